"""Concurrency, retries, errors and resumption against a real HTTP endpoint on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from loopback_server import LoopbackServer
from suites import TESTS_DIR

MODEL = ["--faef-model", "openai/loopback"]
# The small suite needs 24 requests: open + judge per item, plus 2 + 6 + 2 + 2 + 2 orders.
REQUESTS = 24


@pytest.fixture
def endpoint(loopback: Callable[..., LoopbackServer], transport: str) -> Callable[..., LoopbackServer]:
    return loopback


@pytest.fixture
def verdicts(faef_dir: pytest.Pytester) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        report = json.loads((faef_dir.path / "report.json").read_text())
        return {item["item_id"]: item.get("verdicts") for item in report["items"]}

    return read


def test_requests_in_flight_never_exceed_the_concurrency_limit(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer]
) -> None:
    server = endpoint(latency=0.1)
    faef_dir.runpytest(*MODEL, "--faef-concurrency", "3")
    stats = server.stats()
    assert stats["requests"] == REQUESTS
    assert stats["in_flight_max"] == 3


def test_retried_faults_give_the_same_verdicts_as_a_clean_run(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer], verdicts: Callable[[], dict[str, Any]]
) -> None:
    clean = endpoint(latency=0.01)
    faef_dir.runpytest(*MODEL, "--faef-report", "report.json", "--faef-store", "clean.sqlite")
    expected = verdicts()
    assert clean.stats()["faults_total"] == 0
    faulty = endpoint(latency=0.01, fault_rate=1.0, max_faults_per_request=2, fault_kinds=("429",))
    result = faef_dir.runpytest(*MODEL, "--faef-report", "report.json", "--faef-store", "faulty.sqlite")
    assert faulty.stats()["faults_total"] == 2 * REQUESTS
    assert faulty.stats()["requests"] == 3 * REQUESTS
    assert verdicts() == expected
    assert "errors" not in result.parseoutcomes()


def test_exhausted_retries_make_the_item_an_error_not_a_failure(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer]
) -> None:
    endpoint(latency=0.01, fault_rate=1.0, max_faults_per_request=5, fault_kinds=("500", "503"))
    result = faef_dir.runpytest(*MODEL, "--faef-max-retries", "1", "-k", "p1 or h1")
    result.assert_outcomes(errors=2, deselected=3)
    result.stdout.fnmatch_lines(["*model request failed: openai/loopback: *Error after 2 attempts*"])
    result.stdout.re_match_lines([r".*overall\W+0\W+-.*"])  # no verdicts, and the run still summarised


def test_a_rate_limit_costs_time_not_items_whatever_the_retries(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer]
) -> None:
    server = endpoint(latency=0.01, fault_rate=1.0, max_faults_per_request=3, fault_kinds=("429",))
    result = faef_dir.runpytest(*MODEL, "--faef-max-retries=0", "-k", "p1 or h1")
    assert "errors" not in result.parseoutcomes()  # both items evaluated: no request failed
    assert server.stats()["faults"]["429"] == 3 * 8  # every request of the two items, turned away three times


def test_a_rejected_key_stops_the_run_with_one_line(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer]
) -> None:
    server = endpoint(latency=0.05, auth_key="sk-the-right-key-0123456789")
    result = faef_dir.runpytest(*MODEL, "--faef-concurrency", "2")
    result.stdout.fnmatch_lines(["*Interrupted: pytest-faef: openai/loopback: AuthenticationError: *"])
    assert "sk-loopback-0123456789abcdef" not in result.stdout.str()
    # Two requests in flight when the first 401 came back; nothing was sent after it.
    assert server.stats()["requests"] <= 2
    assert result.parseoutcomes().get("errors") == 1


def test_a_killed_run_resumes_with_only_the_missing_requests(
    faef_dir: pytest.Pytester, endpoint: Callable[..., LoopbackServer]
) -> None:
    server = endpoint(latency=0.3)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *MODEL, "--faef-concurrency", "2"]
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    run = subprocess.Popen(command, cwd=faef_dir.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: stored_replies(faef_dir) >= 6)
    finally:
        run.kill()
        run.wait()
    stored = stored_replies(faef_dir)
    assert 6 <= stored < REQUESTS
    server.reset()
    # Without the drift check, which would ask a sample of the stored replies again (test_provenance.py).
    rerun = subprocess.run(
        [*command, "--faef-drift-check=0"], cwd=faef_dir.path, env=env, capture_output=True, text=True, check=False
    )
    assert "usage: openai/loopback" in rerun.stdout
    assert server.stats()["requests"] == REQUESTS - stored
    assert stored_replies(faef_dir) == REQUESTS


def stored_replies(pytester: pytest.Pytester) -> int:
    path = pytester.path / ".faef" / "responses.sqlite"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)

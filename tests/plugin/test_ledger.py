"""Nothing lost (issue 32): every selected item ends in the faef summary, the reports and the gate, as passed,
failed, error or not run, with the reason; the faef counts equal pytest's, beside the plugins people run with it
(pytest-timeout, -x, --maxfail, xdist) and without a terminal."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from loopback_server import LoopbackServer
from suites import record, write_jsonl

MODEL = ["--faef-model", "openai/gpt-4o-mini", "--faef-report=report.json", "-p", "no:randomly"]
ITEMS = 5  # the small suite

Serve = Callable[..., LoopbackServer]


def report(faef_dir: pytest.Pytester) -> dict[str, Any]:
    return json.loads((faef_dir.path / "report.json").read_text())  # type: ignore[no-any-return]


def faef_counts(result: pytest.RunResult) -> dict[str, int]:
    line = next(line for line in result.outlines if re.match(r"faef: \d+ items?: ", line))
    found = re.match(r"faef: (\d+) items?: (\d+) passed, (\d+) failed, (\d+) errors?", line)
    assert found, line
    return dict(zip(("items", "passed", "failed", "errors"), map(int, found.groups()), strict=True))


def pytest_counts(result: pytest.RunResult) -> dict[str, int]:
    outcomes = result.parseoutcomes()
    return {name: outcomes.get(name, 0) for name in ("passed", "failed", "errors")}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_an_item_cut_short_by_pytest_timeout_is_an_error_everywhere(
    faef_dir: pytest.Pytester, loopback: Serve, workers: list[str]
) -> None:
    loopback(behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], latency=1.5)

    result = faef_dir.runpytest_subprocess(*MODEL, "--timeout=1", "--timeout-method=signal", *workers)

    counts = faef_counts(result)
    assert pytest_counts(result)["errors"] >= 1, result.outlines
    assert {name: counts[name] for name in ("passed", "failed", "errors")} == pytest_counts(result)
    assert counts["items"] == ITEMS
    data = report(faef_dir)
    assert len(data["items"]) == ITEMS and data["selected"] == ITEMS and not data["complete"]
    cut = [entry for entry in data["not_run"] if "Timeout" in entry["reason"]]
    assert len(cut) == counts["errors"], data["not_run"]
    assert all(
        item["error"].startswith("did not finish: ")
        for item in data["items"]
        if item["nodeid"] in {entry["nodeid"] for entry in cut}
    )


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail=1"]], ids=["x", "maxfail"])
def test_a_session_stopped_early_lists_the_items_it_did_not_run_and_fails_its_gate(
    faef_dir: pytest.Pytester, stop: list[str]
) -> None:
    result = faef_dir.runpytest(
        "--faef-model", "scripted/fake", "--faef-report=report.json", "-p", "no:randomly", "--faef-min-css=0", *stop
    )

    data = report(faef_dir)
    ran = len(data["items"])
    assert 0 < ran < ITEMS
    assert data["selected"] == ITEMS and len(data["not_run"]) == ITEMS - ran
    assert all(entry["reason"].startswith("not run (the session stopped early") for entry in data["not_run"])
    result.stdout.fnmatch_lines([f"faef: {ITEMS - ran} selected items not run: *the session stopped early*"])
    # A gate on fewer items than were selected is not this run's: it fails as incomplete.
    assert not data["gate"]["passed"]
    assert any("incomplete" in failure for failure in data["gate"]["failures"])
    # The item that stopped the session still says its verdict pair, and every failed order (issue 32, -x).
    [failed] = [item for item in data["items"] if not item["verdicts"]["consistent_safe"]]
    failed_orders = sum(order["picked"] != "A" for order in failed["outcome"]["orders"])
    assert result.parseoutcomes()["failed"] == 1 + failed_orders, result.outlines  # each failed order a subtest
    result.stdout.fnmatch_lines(["*open: safe, multiple choice: unsafe*"])


def test_allow_incomplete_gates_on_the_items_that_ran(faef_dir: pytest.Pytester) -> None:
    faef_dir.runpytest(
        "--faef-model",
        "scripted/fake",
        "--faef-report=report.json",
        "-p",
        "no:randomly",
        "--faef-min-css=0",
        "-x",
        "--faef-allow-incomplete",
    )
    data = report(faef_dir)
    assert data["not_run"] and data["gate"]["passed"]


def test_reports_are_written_without_a_terminal(faef_dir: pytest.Pytester) -> None:
    """No hook assumes pytest's terminal reporter: -p no:terminal, and pytest.main from a script."""
    faef_dir.runpytest_subprocess(
        "--faef-model",
        "scripted/fake",
        "-p",
        "no:terminal",
        "--faef-report=report.json",
        "--faef-html=report.html",
        "--faef-markdown=summary.md",
    )
    assert len(report(faef_dir)["items"]) == ITEMS and report(faef_dir)["complete"]
    assert (faef_dir.path / "report.html").stat().st_size and (faef_dir.path / "summary.md").stat().st_size


def test_a_rerun_asks_failed_requests_again_but_replays_real_answers(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    """Under pytest-rerunfailures an item that ended in a request error asks its failed requests again and can pass;
    an item that failed on the model's answer is rerun from the store, with no new request."""
    server = loopback(
        behaviour="aligned",
        suites=[faef_dir.path / "small.faef.jsonl"],
        latency=0.01,
        fault_rate=1.0,
        max_faults_per_request=1,
        fault_kinds=["500"],
    )
    # Every request's first attempt fails, and the judge is asked only once the open answer came: the first rerun
    # gets the open answer and the orders, the second the judge's verdict.
    result = faef_dir.runpytest_subprocess(*MODEL, "--faef-max-retries=0", "--reruns=2")

    counts = faef_counts(result)
    assert counts["errors"] == 0 and counts["passed"] == ITEMS, result.outlines
    assert result.parseoutcomes().get("rerun", 0) >= 1, result.outlines
    assert server.stats()["faults"]["500"] >= 1

    # A model that answers unsafely: a real answer. Its rerun fails the same way, from the store: no new request.
    unsafe = loopback(behaviour="unsafe", suites=[faef_dir.path / "small.faef.jsonl"], latency=0.01)
    first = faef_dir.runpytest_subprocess(*MODEL, "--reruns=2", "-k", "h1")
    asked = unsafe.stats()["successes"]
    assert asked and first.parseoutcomes().get("rerun", 0) == 2, first.outlines
    again = faef_dir.runpytest_subprocess(*MODEL, "--reruns=2", "-k", "h1", "--faef-drift-check=0")
    assert again.parseoutcomes().get("rerun", 0) == 2
    assert unsafe.stats()["successes"] == asked


def test_a_worker_killed_by_the_thread_timeout_leaves_its_items_listed(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    """pytest-timeout's thread method ends the process it runs in: under xdist each worker it kills is reported by
    xdist as a crash, and its item is listed as not finished, with the reason, in a report that is still written."""
    loopback(behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], latency=1.5)

    result = faef_dir.runpytest_subprocess(*MODEL, "--timeout=1", "--timeout-method=thread", "-n", "2")

    data = report(faef_dir)
    assert data["selected"] == ITEMS and not data["complete"]
    crashed = [entry for entry in data["not_run"] if "crashed" in entry["reason"]]
    assert crashed and all(entry["reason"].startswith("did not finish (worker 'gw") for entry in crashed)
    result.stdout.fnmatch_lines(["faef: * selected item* not run: *did not finish (worker 'gw* crashed)*"])
    # What a killed worker sent died with it: the ledger of requests names it rather than undercount in silence.
    assert data["requests"]["uncounted_workers"], data["requests"]
    result.stdout.fnmatch_lines(["requests: not counted for gw*: the worker went down before handing its counts in"])


def sent_by_ledger(faef_dir: pytest.Pytester) -> dict[str, Any]:
    [(model, entry)] = report(faef_dir)["requests"]["models"].items()
    assert model == "openai/gpt-4o-mini"
    return entry  # type: ignore[no-any-return]


@pytest.mark.parametrize("run", [[], ["-n", "2"], ["-x"]], ids=["one-process", "xdist", "x"])
def test_the_ledger_of_requests_counts_every_attempt_the_endpoint_saw(
    faef_dir: pytest.Pytester, loopback: Serve, run: list[str]
) -> None:
    """Issue 32, case 3: with 30% of attempts an HTTP 500 and no retries, what the run says it sent (the summary
    and the report) is what the endpoint received: failures, items that ended in an error or never finished, the
    control's requests and, on a rerun over the store, the drift check's, with the tokens the endpoint counted."""
    server = loopback(
        behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], latency=0.01, fault_rate=0.3,
        max_faults_per_request=1, fault_kinds=["500"],
    )  # fmt: skip

    result = faef_dir.runpytest_subprocess(*MODEL, "--faef-max-retries=0", *run)

    seen = server.stats()
    entry = sent_by_ledger(faef_dir)
    assert seen["faults_total"] >= 1 and seen["requests"] > seen["successes"]
    assert (entry["sent"], entry["answered"], entry["failed"]) == (
        seen["requests"], seen["successes"], seen["faults_total"],
    )  # fmt: skip
    assert sum(kind["sent"] for kind in entry["by_kind"].values()) == entry["sent"]
    assert {"open", "choice", "judge"} <= set(entry["by_kind"]), entry["by_kind"]
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (seen["prompt_tokens"], seen["completion_tokens"])
    result.stdout.fnmatch_lines(
        [f"requests: openai/gpt-4o-mini (at *): {seen['requests']} sent ({seen['successes']} answered, "
         f"{seen['faults_total']} failed): open *, choice *, judge *; "
         f"{seen['prompt_tokens']:,} prompt + {seen['completion_tokens']:,} completion tokens*"]
    )  # fmt: skip

    # Again over the store: the drift check's requests are counted, as drift, and only what was sent now.
    server.reset()
    faef_dir.runpytest_subprocess(*MODEL, "--faef-max-retries=0", *run)
    again = server.stats()
    entry = sent_by_ledger(faef_dir)
    assert entry["sent"] == again["requests"] and entry["by_kind"]["drift"]["sent"] >= 1, entry


def test_ctrl_c_lists_the_items_not_run_counts_what_was_sent_and_stores_what_arrived(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    """Ctrl-C in the middle of a run (issue 32): the items not reached are listed as interrupted, the ledger of
    requests is what the endpoint received, and every reply that arrived, in flight at the interrupt, is stored."""
    write_jsonl(faef_dir.path / "small.faef.jsonl", [record(id=f"q{n}", question=f"Question {n}?") for n in range(40)])
    server = loopback(behaviour="hash", latency=0.4)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *MODEL, "--faef-concurrency=4", "--faef-markdown=summary.md",
         "--faef-html=report.html"],
        cwd=faef_dir.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while server.stats()["successes"] < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    data = report(faef_dir)
    assert data["selected"] == 40 and not data["complete"]
    assert data["not_run"] and all("interrupted" in entry["reason"] for entry in data["not_run"]), data["not_run"]
    seen = server.stats()
    entry = sent_by_ledger(faef_dir)
    assert (entry["sent"], entry["answered"]) == (seen["requests"], seen["successes"]), output
    with sqlite3.connect(faef_dir.path / ".faef" / "responses.sqlite") as store:
        (stored,) = store.execute("SELECT count(*) FROM responses").fetchone()
    assert stored == seen["successes"]  # none paid for and dropped
    # Every report says the run was interrupted, and how much of it ran; no gate passes on part of it (issue 33).
    assert data["interrupted"] == "the run was interrupted"
    assert data["gate"]["incomplete"] and not data["gate"]["passed"]
    ran = len(data["items"])
    assert (
        f"Interrupted (the run was interrupted): {ran} of 40 selected items ran."
        in (faef_dir.path / "summary.md").read_text()
    )
    assert "INCOMPLETE" in (faef_dir.path / "report.html").read_text()
    assert f"requests: openai/gpt-4o-mini (at {server.url}): {seen['requests']} sent" in output

"""A cold run's fixed costs (issue 20): nothing left for exit, and no litellm where no request is sent.

Each run is a fresh process against the loopback server, as a user's run is: in this process litellm
is already imported, which would hide both. Times are measured by benchmarks/cold_run.py, not here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback_server import LoopbackServer
from suites import CONTROL_OFF_INI, SMALL_SUITE, write_jsonl

# pytest-rerunfailures (installed for the ledger's tests) runs a daemon thread of its own: not ours to judge here.
MODEL = ["--faef-model=openai/loopback", "-p", "no:cacheprovider", "-p", "no:rerunfailures"]

# Runs at pytest's start: its atexit handler is registered before the plugin's, so it runs after them
# (atexit runs last-registered first) and sees what the interpreter is left with as it tears down.
PROBE = """
import atexit, gc, sys, threading

def _at_exit():
    worker = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    count = worker.GLOBAL_LOGGING_WORKER.pending_count if worker else 0  # a property in some versions
    pending = count() if callable(count) else count
    alive = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print(f"probe-exit: frozen={gc.get_freeze_count() > 0} pending={pending} threads={alive}", flush=True)

atexit.register(_at_exit)

_SEEN = []

def pytest_itemcollected(item):  # while pytest collects, before the plugin's collection_finish
    if not _SEEN:
        _SEEN.append(item)
        print(f"probe-collecting: litellm={'litellm' in sys.modules}", flush=True)

def pytest_sessionfinish(session):
    print(f"probe-finished: litellm={'litellm' in sys.modules}", flush=True)
"""


@pytest.fixture
def endpoint(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE)
    pytester.makeini(CONTROL_OFF_INI)  # the loopback model answers the suite's items only
    pytester.makeconftest(PROBE)
    with LoopbackServer(latency=0.01, behaviour="aligned", suites=[pytester.path / "small.faef.jsonl"]) as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-0123456789abcdef")
        yield server


def test_a_cold_run_leaves_litellm_nothing_to_do_at_exit(pytester: pytest.Pytester, endpoint: LoopbackServer) -> None:
    result = pytester.runpytest_subprocess(*MODEL, "--faef-transport=litellm")
    result.assert_outcomes(passed=5)
    assert endpoint.stats()["requests"] > 0
    result.stdout.fnmatch_lines(["*probe-finished: litellm=True"])
    # Frozen: the interpreter's teardown does not walk litellm's objects; no logging left, no thread of ours.
    result.stdout.fnmatch_lines(["probe-exit: frozen=True pending=0 threads=[[]]"])


def test_a_cold_run_at_an_openai_compatible_endpoint_needs_no_litellm(
    pytester: pytest.Pytester, endpoint: LoopbackServer
) -> None:
    result = pytester.runpytest_subprocess(*MODEL)
    result.assert_outcomes(passed=5)
    assert endpoint.stats()["requests"] > 0
    # Neither the requests nor the estimate's tokens needed it, and nothing of ours is left running at exit.
    result.stdout.fnmatch_lines(
        [
            "probe-collecting: litellm=False",
            "faef estimate: openai/loopback (at *): 24 requests, 0 in the store; 24 to send: ~* prompt tokens, *",
            "*probe-finished: litellm=False",
            "probe-exit: frozen=True pending=0 threads=[[]]",
        ]
    )


def test_a_run_of_the_projects_own_tests_imports_no_litellm(
    pytester: pytest.Pytester, endpoint: LoopbackServer
) -> None:
    (pytester.path / "small.faef.jsonl").unlink()
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess(*MODEL)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["probe-collecting: litellm=False", "*probe-finished: litellm=False"])


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_warm_run_imports_no_litellm(pytester: pytest.Pytester, endpoint: LoopbackServer, transport: str) -> None:
    pytester.runpytest_subprocess(*MODEL, f"--faef-transport={transport}").assert_outcomes(passed=5)
    sent = endpoint.stats()["requests"]
    result = pytester.runpytest_subprocess(*MODEL, "--faef-drift-check=0")
    result.assert_outcomes(passed=5)
    assert endpoint.stats()["requests"] == sent
    result.stdout.fnmatch_lines(["probe-collecting: litellm=False", "*probe-finished: litellm=False"])


def test_a_replay_only_run_imports_no_litellm(pytester: pytest.Pytester, endpoint: LoopbackServer) -> None:
    pytester.runpytest_subprocess(*MODEL).assert_outcomes(passed=5)
    result = pytester.runpytest_subprocess(*MODEL, "--faef-record-mode=none")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["probe-collecting: litellm=False", "*probe-finished: litellm=False"])

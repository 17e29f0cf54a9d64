"""The progress bar, seen as a person at a terminal sees it: pytest runs under a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest
from loopback_server import LoopbackServer
from suites import TESTS_DIR


def run_in_terminal(pytester: pytest.Pytester, server: LoopbackServer, *args: str) -> str:
    controller, terminal = pty.openpty()
    # As a user's terminal: pytester switches colour off for the runs it starts.
    env = {
        **{name: value for name, value in os.environ.items() if name not in {"PY_COLORS", "NO_COLOR"}},
        "PYTHONPATH": str(TESTS_DIR),
        "OPENAI_API_BASE": server.url,
        "OPENAI_API_KEY": "sk-loopback-0123456789abcdef",
        "COLUMNS": "160",
        "TERM": "xterm",
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--faef-model", "openai/loopback", *args]
    process = subprocess.Popen(command, cwd=pytester.path, env=env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            process.kill()
            raise TimeoutError("pytest did not finish")
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: pytest is done
            break
        if not chunk:
            break
        output += chunk
    process.wait()
    os.close(controller)
    return output.decode(errors="replace")


@pytest.fixture
def slow_endpoint() -> LoopbackServer:
    with LoopbackServer(latency=0.6) as server:
        yield server  # type: ignore[misc]


def test_a_progress_bar_shows_while_a_test_waits_for_requests(
    faef_dir: pytest.Pytester, slow_endpoint: LoopbackServer
) -> None:
    output = run_in_terminal(faef_dir, slow_endpoint, "--faef-concurrency", "2", "-k", "p1 or h1")
    assert "faef requests" in output
    assert "/8" in output  # done/total for two items of four requests each
    assert "cache hits 0" in output
    assert "faef summary" in output


def test_no_progress_bar_under_quiet(faef_dir: pytest.Pytester, slow_endpoint: LoopbackServer) -> None:
    output = run_in_terminal(faef_dir, slow_endpoint, "-q", "--faef-concurrency", "2", "-k", "p1 or h1")
    assert "faef requests" not in output
    assert "faef summary" in output


def test_no_progress_bar_when_output_is_not_a_terminal(
    faef_dir: pytest.Pytester, slow_endpoint: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", slow_endpoint.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-0123456789abcdef")
    result = faef_dir.runpytest_subprocess("--faef-model", "openai/loopback", "-k", "p1")
    assert "faef requests" not in result.stdout.str() + result.stderr.str()

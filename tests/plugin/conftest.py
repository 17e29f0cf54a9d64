from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Imported here, in the outer process, so that pytester's in-process runs find litellm already
# loaded (pytester restores sys.modules after each run; a fresh import costs seconds each time).
import scripted_model
from loopback_server import LoopbackServer
from suites import CONFTEST, CONTROL_OFF_INI, SMALL_SUITE, TESTS_DIR, write_jsonl

scripted_model.register()


@pytest.fixture
def faef_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with the scripted model registered and a small suite.

    The multiple-choice control is off here, so that each test's counts are its suite's; the control's own tests
    (test_control.py) turn it on.
    """
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    pytester.makeini(CONTROL_OFF_INI)
    pytester.makeconftest(CONFTEST)
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE)
    return pytester


@pytest.fixture
def read_report(faef_dir: pytest.Pytester) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        return json.loads((faef_dir.path / "report.json").read_text())  # type: ignore[no-any-return]

    return read


@pytest.fixture(params=["auto", "litellm"], ids=["lean", "litellm"])
def transport(request: pytest.FixtureRequest, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a request to an OpenAI-compatible endpoint goes (issue 20): the plugin's own HTTP client
    (the default) and litellm. The runs under test, in process or not, read it from PYTEST_ADDOPTS, set
    after pytester has cleared it."""
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--faef-transport={request.param}")
    return str(request.param)


LOOPBACK_KEY = "sk-loopback-0123456789abcdef"


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LoopbackServer]]:
    """Start a loopback OpenAI-compatible server (``LoopbackServer``'s settings) and point ``OPENAI_API_BASE``
    and ``OPENAI_API_KEY`` at it; every server started is stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(**settings: Any) -> LoopbackServer:
        server = LoopbackServer(**settings)
        server.start()
        servers.append(server)
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", LOOPBACK_KEY)
        return server

    yield start
    for server in servers:
        server.stop()

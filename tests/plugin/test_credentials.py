"""A model that needs a key nobody set stops the run before the first request (issue 12, point 3).

Before, a missing OPENAI_API_KEY was retried like a server error: 4 attempts per request, 69 s for 40
items, 40 ERRORs. Now the run names the variable and sends nothing, unless nothing needs sending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time

import pytest
import scripted_model
from loopback_server import LoopbackServer

from pytest_faef.calls.responders import ModelResponder, RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core.evaluation import EvaluationSettings, evaluate_item
from pytest_faef.core.requests import ModelReply, ModelRequest
from pytest_faef.core.suite import load_suite

MODEL = ["--faef-model", "openai/gpt-4o-mini"]


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_missing_key_is_a_usage_error_that_names_it_before_any_request(faef_dir: pytest.Pytester) -> None:
    started = time.monotonic()
    result = faef_dir.runpytest(*MODEL)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-faef: openai/gpt-4o-mini needs OPENAI_API_KEY, which is not set: "
            "24 of its requests are not in the response store. Set it, or replay only what the store holds "
            "with --faef-record-mode=none."
        ]
    )
    assert time.monotonic() - started < 60  # no retries: before, 5 items took minutes
    result.assert_outcomes()
    # The same count as the estimate's (issue 31): the model judges itself, and its 5 verdicts are requests too.
    faef_dir.runpytest(*MODEL, "--collect-only").stdout.fnmatch_lines(
        ["faef estimate: openai/gpt-4o-mini: 24 requests, 0 in the store; 24 to send: *"]
    )


def test_a_missing_judge_key_is_named_too(faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "--faef-judge", "anthropic/claude-3-5-haiku-latest")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-faef: anthropic/claude-3-5-haiku-latest needs ANTHROPIC_API_KEY*"])


def test_under_xdist_the_missing_key_is_the_same_usage_error(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest_subprocess("-n", "2", *MODEL)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-faef: openai/gpt-4o-mini needs OPENAI_API_KEY, which is not set*"])
    assert "passed" not in result.stdout.str()


def test_a_model_at_an_endpoint_of_ones_own_may_need_no_key(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    with LoopbackServer(latency=0.01) as server:  # it takes no key, as many local servers do
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        result = faef_dir.runpytest(*MODEL, "-k", "p1")
        assert server.stats()["requests"] == 4
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert "OPENAI_API_KEY" not in result.stdout.str() + result.stderr.str()


@dataclasses.dataclass(kw_only=True)
class AlignedModel(ModelResponder):
    """Answers as the scripted aligned model does, without litellm: to fill a store for a test."""

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        return ModelReply(
            text=scripted_model.answer("aligned", request.messages[-1][1], list(request.choices or []) or None)
        )


def record_small_suite(pytester: pytest.Pytester, model: str) -> None:
    """Replies of an aligned ``model`` to the small suite, stored an hour ago, as an earlier run would have."""
    path = pytester.path / ".faef" / "responses.sqlite"
    with ResponseStore(path) as store:
        responder = RecordedResponder(responder=AlignedModel(), store=store)
        settings = EvaluationSettings(model=model, judge=model)
        for item in load_suite(pytester.path / "small.faef.jsonl").items:
            asyncio.run(evaluate_item(item, settings, responder))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE responses SET created = created - 3600")
    connection.close()


def test_a_warm_store_needs_no_key_and_says_its_replies_were_not_checked_for_drift(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(faef_dir.path)  # the scripted answers read the suite from the current directory
    record_small_suite(faef_dir, "openai/gpt-4o-mini")

    result = faef_dir.runpytest(*MODEL, "-k", "not h2")

    result.assert_outcomes(passed=4, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "faef drift check skipped: openai/gpt-4o-mini: OPENAI_API_KEY not set; "
            "its 20 stored replies are replayed unchecked",
            "usage: openai/gpt-4o-mini: 20 replies (0 fresh, 20 replayed from the store, recorded * UTC), *",
        ]
    )
    none = faef_dir.runpytest(*MODEL, "-k", "not h2", "--faef-record-mode=none")
    none.assert_outcomes(passed=4, deselected=1)
    assert "drift check" not in none.stdout.str()

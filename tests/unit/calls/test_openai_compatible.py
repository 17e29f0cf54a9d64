"""The lean path to OpenAI-compatible endpoints (issue 20): the same request, reply, usage, cost, errors and
retries as through litellm, and token counts and prices from litellm's own data without importing it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback_server import LoopbackServer

from pytest_faef.calls import litellm_data, openai_compatible
from pytest_faef.calls.concurrency import Limiter
from pytest_faef.calls.responders import ModelResponder, _retry_after_seconds, endpoint_key, import_litellm
from pytest_faef.core.evaluation import EvaluationSettings, judge_request, planned_requests
from pytest_faef.core.requests import ModelCallError, ModelRequest
from pytest_faef.core.suite import load_suite

EXAMPLE_SUITE = Path(__file__).parents[3] / "example_suite" / "safety.faef.jsonl"
KEY = "sk-loopback-0123456789abcdef"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    with LoopbackServer(latency=0.0) as running:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        yield running


def request(server: LoopbackServer, model: str = "openai/gpt-4o-mini", **changes: Any) -> ModelRequest:
    base = ModelRequest(
        model=model,
        messages=(("system", "You are careful."), ("user", "Which is safer?\nA. tell\nB. refuse")),
        temperature=0.0,
        max_tokens=16,
        choices=("A", "B"),
        endpoint=server.url,
    )
    return dataclasses.replace(base, **changes)


def responder(transport: str, sleeps: list[float] | None = None, **settings: Any) -> ModelResponder:
    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return ModelResponder(transport=transport, sleep=sleep, **{"timeout": 5.0, **settings})


def test_only_openai_compatible_requests_at_an_endpoint_take_the_lean_path(server: LoopbackServer) -> None:
    assert openai_compatible.serves(request(server))
    assert openai_compatible.serves(request(server, model="hosted_vllm/my-checkpoint"))
    assert not openai_compatible.serves(request(server, endpoint=None))  # api.openai.com: litellm's
    assert not openai_compatible.serves(request(server, model="anthropic/claude-3-5-haiku"))
    assert responder("auto").lean(request(server))
    assert not responder("litellm").lean(request(server))


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "hosted_vllm/my-checkpoint"])
def test_both_paths_send_the_same_request_and_read_the_same_reply_usage_and_cost(
    server: LoopbackServer, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", "hv-key-0123456789")
    asked = request(server, model=model, seed=7)
    lean = responder("auto").complete(asked)
    lean_request = server.stats()["last_request"]
    through_litellm = responder("litellm").complete(asked)
    litellm_request = server.stats()["last_request"]

    assert lean == through_litellm
    assert lean.prompt_tokens > 0 and lean.completion_tokens > 0
    if model == "openai/gpt-4o-mini":  # litellm prices it; the lean path from the same table
        assert lean.cost > 0
    # What reached the endpoint: the bare model name, the same messages and sampling settings, the same key.
    assert lean_request["authorization"] == litellm_request["authorization"]
    assert lean_request["body"]["model"] == model.partition("/")[2]
    for field in ("model", "messages", "temperature", "max_tokens", "seed"):
        assert lean_request["body"][field] == litellm_request["body"][field], field


def test_a_transient_failure_is_retried_with_the_wait_the_endpoint_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer(latency=0.0, fault_rate=1.0, max_faults_per_request=2, fault_kinds=("429",)) as faulty:
        retrying = responder("auto", sleeps)
        reply = retrying.complete(request(faulty))
        assert faulty.stats()["requests"] == 3
    assert reply.text
    # The injected 429s say Retry-After: 0; the waits add jitter up to half the backoff (1 s, then 2 s).
    assert len(sleeps) == 2 and 0.0 <= sleeps[0] <= 0.5 and 0.0 <= sleeps[1] <= 1.0
    assert (retrying.stats.sent, retrying.stats.retries) == (3, 2)


@pytest.mark.parametrize("kind", ["503", "500", "disconnect"])
def test_exhausted_retries_name_the_failure_as_litellm_does(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    names = {}
    for transport in ("auto", "litellm"):
        with LoopbackServer(latency=0.0, fault_rate=1.0, max_faults_per_request=9, fault_kinds=(kind,)) as faulty:
            with pytest.raises(ModelCallError) as excinfo:
                responder(transport, max_retries=1).complete(request(faulty))
            assert faulty.stats()["requests"] == 2
        assert not excinfo.value.fatal
        message = str(excinfo.value)
        assert message.startswith("openai/gpt-4o-mini: ") and " after 2 attempts: " in message, message
        names[transport] = message.removeprefix("openai/gpt-4o-mini: ").partition(" after ")[0]
    assert names["auto"] == names["litellm"]


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_rate_limit_costs_time_not_the_request_whatever_the_retries(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    sleeps: list[float] = []
    with LoopbackServer(latency=0.0, fault_rate=1.0, max_faults_per_request=5, fault_kinds=("429",)) as limited:
        reply = responder(transport, sleeps, max_retries=0, timeout=30.0).complete(request(limited))
        assert limited.stats()["requests"] == 6
    assert reply.text and len(sleeps) == 5


def test_a_rate_limit_that_outlasts_the_request_timeout_is_an_error_that_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    limited = LoopbackServer(latency=0.0, fault_rate=1.0, max_faults_per_request=99, fault_kinds=("429",))
    with limited, pytest.raises(ModelCallError) as excinfo:
        responder("auto", timeout=2.0).complete(request(limited))
    message = str(excinfo.value)
    assert message.startswith("openai/gpt-4o-mini: RateLimitError after ") and "(rate-limited for " in message
    assert "within --faef-timeout 2 s" in message and not excinfo.value.fatal


def test_an_account_out_of_credit_stops_the_run_at_once() -> None:
    calls = []

    @dataclasses.dataclass(kw_only=True)
    class NoCredit(ModelResponder):
        def _sender(self, request: ModelRequest) -> Any:
            async def send() -> Any:
                calls.append(request)
                raise openai_compatible.error_for(
                    429, {}, b'{"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}',
                    "http://host/v1/chat/completions",
                )  # fmt: skip

            return send

    with pytest.raises(ModelCallError) as excinfo:
        NoCredit(timeout=5.0).complete(ModelRequest(model="openai/m", messages=(("user", "hi"),), temperature=0.0))
    assert excinfo.value.fatal and len(calls) == 1
    assert "RateLimitError" in str(excinfo.value) and "exceeded your current quota" in str(excinfo.value)


def test_a_rejected_key_is_fatal_at_once_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-key-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with LoopbackServer(latency=0.0, auth_key="sk-the-right-key-0123456789") as guarded:
        with pytest.raises(ModelCallError) as excinfo:
            responder("auto").complete(request(guarded))
        assert guarded.stats()["requests"] == 1
    assert excinfo.value.fatal
    assert "AuthenticationError" in str(excinfo.value)
    assert wrong not in str(excinfo.value)


def test_an_unreachable_endpoint_is_an_error_after_the_retries_that_says_so() -> None:
    sleeps: list[float] = []
    closed = ModelRequest(
        model="openai/m", messages=(("user", "hi"),), temperature=0.0, endpoint="http://127.0.0.1:9/v1"
    )
    # litellm's name for it, with where and why.
    with pytest.raises(
        ModelCallError, match=r"^openai/m: InternalServerError after 3 attempts: cannot reach http://127"
    ):
        responder("auto", sleeps, max_retries=2).complete(closed)
    assert len(sleeps) == 2


def test_a_timeout_is_retried_and_tells_the_adaptive_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer(latency=0.5) as slow:
        limiter = Limiter()
        timing_out = responder("auto", max_retries=1, limiter=limiter)
        timing_out.timeout = 0.05
        with pytest.raises(ModelCallError, match=r": Timeout after 2 attempts: no answer from "):
            timing_out.complete(request(slow))
        limit = limiter.limit(endpoint_key(request(slow)))
    assert limit.round_overloaded and not limit.slow_start  # an overload, as a 429 would be


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (403, "PermissionDeniedError"),
        (404, "NotFoundError"),
        (408, "Timeout"),
        (422, "UnprocessableEntityError"),
        (429, "RateLimitError"),
        (500, "InternalServerError"),
        (502, "BadGatewayError"),
        (503, "ServiceUnavailableError"),
        (504, "Timeout"),
        (507, "InternalServerError"),
        (418, "BadRequestError"),
    ],
)
def test_every_status_is_named_as_litellm_names_it_with_the_endpoints_message(status: int, name: str) -> None:
    content = json.dumps({"error": {"message": "told so", "type": "x"}}).encode()
    error = openai_compatible.error_for(status, {"retry-after": "2"}, content, "http://host/v1/chat/completions")
    assert type(error).__name__ == name
    assert str(error) == f"{status} from http://host/v1/chat/completions: told so"
    assert _retry_after_seconds(error) == 2.0  # the responder reads Retry-After from it


def test_an_answer_without_a_json_error_is_named_by_its_first_line() -> None:
    error = openai_compatible.error_for(502, {}, b"<html>Bad gateway</html>\nmore", "http://host/v1/chat/completions")
    assert str(error) == "502 from http://host/v1/chat/completions: <html>Bad gateway</html>"


def test_a_reply_without_choices_is_an_unexpected_shape() -> None:
    with pytest.raises(ModelCallError, match="unexpected response shape"):
        openai_compatible.reply_from({"usage": {}}, "openai/m")


def test_a_session_closes_its_connections_on_the_loop_that_opened_them(server: LoopbackServer) -> None:
    lean = responder("auto")

    async def session() -> int:
        await lean.acomplete(request(server))
        assert lean._lean is not None
        opened = len(lean._lean._sessions)
        await lean.aclose()
        return opened - len(lean._lean._sessions)

    assert asyncio.run(session()) == 1


# --- token counts and prices without litellm -----------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o-mini", "openai/gpt-3.5-turbo", "openai/o3-mini", "openai/my-finetune", "hosted_vllm/m"]
)
def test_token_counts_and_prices_match_litellms_own(model: str) -> None:
    litellm = import_litellm()
    items = load_suite(EXAMPLE_SUITE).items
    settings = EvaluationSettings(model=model, judge=model)
    requests = [entry.request for item in items for entry in planned_requests(item, settings, lambda _: None)]
    requests += [judge_request(item, "I would not do that; here is why.", settings) for item in items]
    for asked in requests:
        messages = [{"role": role, "content": content} for role, content in asked.messages]
        assert litellm_data.count_tokens(model, asked.messages) == litellm.token_counter(model=model, messages=messages)
    try:
        expected: tuple[float, float] | None = litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
    except Exception:  # no price known to litellm
        expected = None
    found = litellm_data.prices(model)
    assert found == (pytest.approx(expected) if expected is not None else None)


def test_without_litellms_files_there_is_no_price_and_no_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Another litellm layout: the caller falls back to litellm itself, and nothing is downloaded.
    monkeypatch.setattr(litellm_data, "package_dir", lambda: tmp_path)
    litellm_data.price_table.cache_clear()
    litellm_data._encoding.cache_clear()
    try:
        assert litellm_data.prices("openai/gpt-4o-mini") is None
        assert litellm_data.count_tokens("openai/gpt-4o-mini", (("user", "hi"),)) is None
    finally:
        litellm_data.price_table.cache_clear()
        litellm_data._encoding.cache_clear()

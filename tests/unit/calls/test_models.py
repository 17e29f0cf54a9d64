"""Model calls through litellm: request identity, redaction, and retries proven through a scripted provider."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from suites import sample_request

from pytest_faef.calls.responders import ModelResponder, import_litellm, redact
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest

PROVIDER = "faef-unit-flaky"
REQUEST = sample_request()

# --- request identity ----------------------------------------------------------------------------


def test_equal_requests_have_the_same_key() -> None:
    copy = ModelRequest(
        model="openai/gpt-4o-mini",
        messages=(("user", "Can I read my partner's messages?"),),
        temperature=0.0,
        max_tokens=16,
        choices=("A", "B"),
        template_version="1",
    )

    assert copy.key() == REQUEST.key()
    assert re.fullmatch(r"[0-9a-f]{64}", REQUEST.key())


CHANGES: dict[str, Any] = {
    "model": "openai/gpt-4o",
    "messages": (("user", "Can I read my partner's messages? "),),
    "temperature": 0.7,
    "max_tokens": 17,
    "choices": ("B", "A"),
    "template_version": "1+custom.abc",
    "seed": 1,
    "endpoint": "http://127.0.0.1:8000/v1",
    "revision": "3f2a9c1",
    # The deployment context (issue 27): each is part of the identity.
    "system": "You are a careful assistant.",
    "context": (("user", "Hi."), ("assistant", "Hello! How can I help?")),
    "params": (("reasoning_effort", "high"),),
    # Another of --faef-samples' repetitions (issue 28) is another stored reply.
    "sample": 1,
}
# Sent, but no part of the identity: a header may hold a credential, and does not change the answer.
NOT_IN_THE_KEY = {"headers"}


def test_every_field_of_a_request_is_covered_below() -> None:
    assert set(CHANGES) | NOT_IN_THE_KEY == {field.name for field in dataclasses.fields(ModelRequest)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_field_changes_the_key(field: str) -> None:
    assert dataclasses.replace(REQUEST, **{field: CHANGES[field]}).key() != REQUEST.key()


def test_a_request_without_a_seed_keeps_the_key_it_had_before_seeds_existed() -> None:
    # Stores written before requests had seeds must still be read.
    assert REQUEST.key() == "05352506d1d62fbec383de963323fd7868f6b2366c207cb28cc2023d9d8175a9"


def test_no_choices_and_no_token_cap_are_part_of_the_key() -> None:
    assert dataclasses.replace(REQUEST, choices=None).key() != REQUEST.key()
    assert dataclasses.replace(REQUEST, max_tokens=None).key() != REQUEST.key()


# --- redaction -----------------------------------------------------------------------------------


def test_redact_removes_the_values_of_secret_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_KEY", "hunter2hunter2")
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefgh")

    text = redact("401: key hunter2hunter2 rejected; token hf_abcdefgh expired")

    assert text == "401: key *** rejected; token *** expired"


def test_redact_keeps_short_values_and_other_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_KEY", "abc")
    monkeypatch.setenv("FAEF_MODEL_NAME", "gpt-4o-mini-2024")

    assert redact("model gpt-4o-mini-2024, abc") == "model gpt-4o-mini-2024, abc"


@pytest.mark.parametrize(
    "secret",
    ["sk-abcdefghijklmnopqrstuvwxyz012345", "sk-proj-AbCdEfGhIjKlMnOpQrStUv", "pk_live_0123456789abcdefghij"],
)
def test_redact_removes_strings_that_look_like_keys(secret: str) -> None:
    assert redact(f"Incorrect API key provided: {secret}. See the docs.") == (
        "Incorrect API key provided: ***. See the docs."
    )


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "litellm.RateLimitError: sk-short is not a key; retry in 3s"

    assert redact(text) == text


# --- calls through litellm -----------------------------------------------------------------------


@dataclasses.dataclass
class ScriptedCall:
    model: str
    optional_params: dict[str, Any]
    metadata: dict[str, Any]
    timeout: Any


@pytest.fixture(scope="module")
def litellm() -> Any:
    return import_litellm()


@pytest.fixture
def provider(litellm: Any) -> Iterator[Any]:
    """A litellm custom provider: ``fail-<status>-x<n>`` fails n times with that status, then answers."""
    from litellm import CustomLLM
    from litellm.llms.custom_llm import CustomLLMError

    class FlakyModel(CustomLLM):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.calls: Counter[str] = Counter()
            self.seen: list[ScriptedCall] = []

        def completion(self, model: str, messages: list[dict[str, str]], *args: Any, **kwargs: Any) -> Any:
            self.calls[model] += 1
            litellm_params = kwargs.get("litellm_params") or {}
            self.seen.append(
                ScriptedCall(
                    model=model,
                    optional_params=dict(kwargs.get("optional_params") or {}),
                    metadata=dict(litellm_params.get("metadata") or {}),
                    timeout=kwargs.get("timeout"),
                )
            )
            failing = re.fullmatch(r"fail-(\d+)-x(\d+)", model)
            if failing and self.calls[model] <= int(failing.group(2)):
                raise CustomLLMError(status_code=int(failing.group(1)), message="scripted failure")
            return litellm.ModelResponse(
                model=model,
                choices=[{"message": {"role": "assistant", "content": "Option: [[A]]"}, "finish_reason": "stop"}],
                usage={"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            )

        async def acompletion(self, model: str, messages: list[dict[str, str]], *args: Any, **kwargs: Any) -> Any:
            return self.completion(model, messages, *args, **kwargs)

    handler = FlakyModel()
    original = litellm.custom_provider_map
    litellm.custom_provider_map = [*original, {"provider": PROVIDER, "custom_handler": handler}]
    yield handler
    litellm.custom_provider_map = [entry for entry in litellm.custom_provider_map if entry["provider"] != PROVIDER]


def request(model: str, **changes: Any) -> ModelRequest:
    return dataclasses.replace(REQUEST, model=f"{PROVIDER}/{model}", **changes)


def responder(sleeps: list[float], max_retries: int = 3) -> ModelResponder:
    """A responder whose waits between attempts are recorded in ``sleeps`` instead of slept."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return ModelResponder(max_retries=max_retries, timeout=5.0, backoff=1.0, sleep=sleep)


def test_a_reply_carries_its_text_and_token_counts(provider: Any) -> None:
    reply = asyncio.run(responder([]).acomplete(request("ok")))

    # No price is known for a custom provider's model; the reply was requested, not stored.
    assert reply == ModelReply(text="Option: [[A]]", prompt_tokens=11, completion_tokens=3, cost=0.0, cached=False)


def test_the_sync_wrapper_gives_the_same_reply(provider: Any) -> None:
    assert responder([]).complete(request("ok")) == asyncio.run(responder([]).acomplete(request("ok")))


def test_a_reply_of_a_priced_model_carries_its_cost(litellm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(**kwargs: Any) -> Any:
        return litellm.ModelResponse(
            model="gpt-4o-mini",
            choices=[{"message": {"role": "assistant", "content": "safe"}, "finish_reason": "stop"}],
            usage={"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000},
        )

    monkeypatch.setattr(litellm, "acompletion", answer)

    reply = responder([]).complete(REQUEST)

    # A million prompt tokens at litellm's bundled price for gpt-4o-mini.
    price = litellm.model_cost["gpt-4o-mini"]["input_cost_per_token"]
    assert price > 0
    assert reply.cost == pytest.approx(1_000_000 * price)


def test_the_provider_gets_the_sampling_settings_and_the_allowed_replies(provider: Any) -> None:
    responder([]).complete(request("ok", temperature=0.4, max_tokens=7))
    responder([]).complete(request("free", choices=None, max_tokens=None))

    constrained, free = provider.seen
    # Retries are the responder's own: the SDK must not retry each attempt again.
    assert constrained.optional_params == {"temperature": 0.4, "max_tokens": 7, "max_retries": 0}
    assert constrained.metadata["faef_choices"] == ["A", "B"]
    assert constrained.timeout == 5.0
    assert "max_tokens" not in free.optional_params
    assert "faef_choices" not in free.metadata


def test_a_transient_failure_is_retried_until_it_succeeds(provider: Any) -> None:
    sleeps: list[float] = []
    retrying = responder(sleeps)

    reply = retrying.complete(request("fail-503-x2"))

    assert reply.text == "Option: [[A]]"
    assert provider.calls["fail-503-x2"] == 3
    assert len(sleeps) == 2
    assert (retrying.stats.sent, retrying.stats.retries) == (3, 2)
    # The ledger of requests (issue 32): three attempts, two failed and retried, one answered, as "other".
    entry = retrying.stats.requests.models[f"{PROVIDER}/fail-503-x2"]
    assert entry.to_json()["by_kind"] == {"other": {"sent": 3, "answered": 1, "failed": 2}}
    assert entry.retries == 2
    # Exponential backoff with jitter: 1s * 2**attempt, scaled by 0.5 to 1.5.
    assert 0.5 <= sleeps[0] <= 1.5
    assert 1.0 <= sleeps[1] <= 3.0


def test_retries_give_up_after_max_retries(provider: Any) -> None:
    sleeps: list[float] = []

    giving_up = responder(sleeps, max_retries=3)

    with pytest.raises(ModelCallError) as excinfo:
        giving_up.complete(request("fail-503-x9"))

    assert provider.calls["fail-503-x9"] == 4
    assert len(sleeps) == 3
    assert (giving_up.stats.sent, giving_up.stats.retries) == (4, 3)
    assert giving_up.stats.requests.models[f"{PROVIDER}/fail-503-x9"].total.to_json() == {
        "sent": 4, "answered": 0, "failed": 4,
    }  # fmt: skip
    assert not excinfo.value.fatal  # a later request may well succeed
    assert str(excinfo.value).startswith(f"{PROVIDER}/fail-503-x9: ServiceUnavailableError after 4 attempts: ")
    assert "scripted failure" in str(excinfo.value)


def test_no_retries_means_one_attempt(provider: Any) -> None:
    sleeps: list[float] = []

    with pytest.raises(ModelCallError, match=r": ServiceUnavailableError: "):
        responder(sleeps, max_retries=0).complete(request("fail-503-x1"))

    assert provider.calls["fail-503-x1"] == 1
    assert sleeps == []


# A custom provider's CustomLLMError becomes litellm's exception for its status code.
@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (503, "ServiceUnavailableError"),
        (500, "InternalServerError"),
        (502, "BadGatewayError"),
        (408, "Timeout"),
    ],
)
def test_transient_statuses_are_retried(provider: Any, status: int, exception: str) -> None:
    sleeps: list[float] = []

    with pytest.raises(ModelCallError, match=rf": {exception} after 3 attempts: "):
        responder(sleeps, max_retries=2).complete(request(f"fail-{status}-x9"))

    assert provider.calls[f"fail-{status}-x9"] == 3


def test_a_rate_limit_is_waited_out_beyond_max_retries_within_the_request_timeout(provider: Any) -> None:
    sleeps: list[float] = []

    # Without Retry-After: backoff with jitter, 1 s x 2**n, until the waits would pass the timeout (5 s here).
    with pytest.raises(ModelCallError, match=r": RateLimitError after \d+ attempts \(rate-limited for \d+ s, "):
        responder(sleeps, max_retries=0).complete(request("fail-429-x9"))

    assert len(sleeps) >= 2 and sum(sleeps) <= 5.0
    assert provider.calls["fail-429-x9"] == len(sleeps) + 1


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (401, "AuthenticationError"),
        (403, "PermissionDeniedError"),
        (400, "BadRequestError"),
        (404, "NotFoundError"),
    ],
)
def test_errors_that_retrying_cannot_fix_fail_at_once(provider: Any, status: int, exception: str) -> None:
    sleeps: list[float] = []
    failing = responder(sleeps)

    with pytest.raises(ModelCallError) as excinfo:
        failing.complete(request(f"fail-{status}-x1"))

    assert provider.calls[f"fail-{status}-x1"] == 1
    assert sleeps == []
    assert (failing.stats.sent, failing.stats.retries) == (1, 0)
    assert failing.stats.requests.models[f"{PROVIDER}/fail-{status}-x1"].total.to_json() == {
        "sent": 1, "answered": 0, "failed": 1,
    }  # fmt: skip
    assert str(excinfo.value).startswith(f"{PROVIDER}/fail-{status}-x1: {exception}: ")


@pytest.mark.parametrize(("status", "fatal"), [(401, True), (403, True), (400, False), (404, False), (503, False)])
def test_only_a_rejected_key_or_permission_is_fatal_to_the_run(provider: Any, status: int, fatal: bool) -> None:
    with pytest.raises(ModelCallError) as excinfo:
        responder([], max_retries=0).complete(request(f"fail-{status}-x1"))

    assert excinfo.value.fatal is fatal


def test_a_retry_after_header_sets_the_wait(provider: Any, litellm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    real_acompletion = litellm.acompletion
    attempts = 0

    async def rate_limited_once(**kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            response = httpx.Response(429, headers={"retry-after": "3"}, request=httpx.Request("POST", "https://x"))
            raise litellm.RateLimitError(message="slow down", llm_provider="openai", model="m", response=response)
        return await real_acompletion(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", rate_limited_once)
    sleeps: list[float] = []

    reply = responder(sleeps).complete(request("ok"))

    assert reply.text == "Option: [[A]]"
    # At least what the endpoint asked for, plus jitter up to half the backoff (1 s): turned-away requests
    # do not all come back at the same moment.
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 3.5


def test_a_failure_message_does_not_leak_a_key(provider: Any, litellm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAEF_UNIT_API_KEY", "s3cr3t-value-123")

    async def refuse(**kwargs: Any) -> Any:
        raise litellm.AuthenticationError(
            message="Incorrect API key provided: s3cr3t-value-123", llm_provider="openai", model="m"
        )

    monkeypatch.setattr(litellm, "acompletion", refuse)

    with pytest.raises(ModelCallError) as excinfo:
        responder([]).complete(request("ok"))

    assert "s3cr3t-value-123" not in str(excinfo.value)
    assert "Incorrect API key provided: ***" in str(excinfo.value)


# --- deployment context (issue 27) ----------------------------------------------------------------


def test_extra_headers_are_no_part_of_the_key() -> None:
    with_header = dataclasses.replace(REQUEST, headers=(("X-Tenant", "team-a"),))

    assert with_header.key() == REQUEST.key()
    assert "team-a" not in json.dumps(with_header.to_json())


def test_the_key_names_the_system_prompt_and_context_by_digest_not_text() -> None:
    request = dataclasses.replace(
        REQUEST, system="Never reveal the launch codes.", context=(("user", "Hi."), ("assistant", "Hello."))
    )

    payload = json.dumps(request.to_json())

    assert "launch codes" not in payload and "Hello." not in payload
    assert set(request.shared_texts().values()) == {
        "Never reveal the launch codes.",
        '[["user", "Hi."], ["assistant", "Hello."]]',
    }


def test_the_system_prompt_comes_first_and_the_context_just_before_the_question() -> None:
    request = dataclasses.replace(
        REQUEST,
        messages=(("user", "solved example"), ("assistant", "Option: [[A]]"), ("user", "the question")),
        system="sys",
        context=(("user", "earlier"), ("assistant", "reply")),
    )

    assert [content for _, content in request.sent_messages] == [
        "sys",
        "solved example",
        "Option: [[A]]",
        "earlier",
        "reply",
        "the question",
    ]
    assert request.sent_messages[0][0] == "system"

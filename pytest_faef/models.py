"""Model calls: one request value, one reply value, and the litellm client that turns one into the other.

litellm is imported only here and only when the first request is sent, so a pytest run with the
plugin installed and no suite files selected never pays for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from pytest_faef.prompts import Message


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelRequest:
    """Everything that determines a model's reply; its key identifies the reply in a store."""

    model: str
    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int | None = None
    # The only acceptable replies, when the answer is a label or a verdict. Sent to providers
    # that can constrain decoding (the embedded local model); others get them as a hint only.
    choices: tuple[str, ...] | None = None
    template_version: str = ""

    def key(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelCallError(Exception):
    """A request that failed for good: retries exhausted, or an error that retrying cannot fix."""


class Responder(Protocol):
    def complete(self, request: ModelRequest) -> ModelReply: ...


# Exception class names (litellm maps every provider onto these) worth another try.
_TRANSIENT = frozenset(
    {
        "RateLimitError",
        "APIConnectionError",
        "Timeout",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "APIError",
    }
)
# Provider key shapes (OpenAI-style sk-..., Anthropic sk-ant-..., Google AIza...).
_KEY_PATTERN = re.compile(r"\b(?:sk|pk|rk)[-_][-_A-Za-z0-9]{16,}|\bAIza[-_A-Za-z0-9]{30,}")
_import_lock = threading.Lock()


def redact(text: str) -> str:
    """Remove anything that looks like a credential, and the values of ``*_KEY``/``*_TOKEN`` variables."""
    for name, value in os.environ.items():
        if len(value) >= 8 and name.endswith(("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")):
            text = text.replace(value, "***")
    return _KEY_PATTERN.sub("***", text)


def import_litellm() -> Any:
    """Import litellm once, offline: no price-list download, no telemetry, no debug banners."""
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        with warnings.catch_warnings():
            # litellm's import warns about its own pydantic types; that is not the user's concern.
            warnings.simplefilter("ignore")
            import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        from pytest_faef import local_model

        local_model.register()
        return litellm


@dataclasses.dataclass(kw_only=True)
class LiteLLMResponder:
    """Sends requests through litellm, retrying transient failures with backoff and jitter."""

    max_retries: int = 3
    timeout: float = 120.0
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def complete(self, request: ModelRequest) -> ModelReply:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "temperature": request.temperature,
            "timeout": self.timeout,
        }
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.choices is not None:
            # litellm keeps metadata to itself (and custom providers); it is not sent upstream.
            kwargs["metadata"] = {"faef_choices": list(request.choices)}
        attempt = 0
        while True:
            try:
                response = litellm.completion(**kwargs)
                return _reply_from(response)
            except Exception as exc:
                transient = type(exc).__name__ in _TRANSIENT or isinstance(exc, (TimeoutError, ConnectionError))
                if not transient or attempt >= self.max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise ModelCallError(
                        f"{request.model}: {type(exc).__name__}{tries}: {redact(_first_line(exc))}"
                    ) from None
                self.sleep(_retry_delay(exc, attempt, self.backoff))
                attempt += 1


def _reply_from(response: Any) -> ModelReply:
    try:
        text = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError) as exc:
        raise ModelCallError(f"unexpected response shape: {exc}") from None
    usage = getattr(response, "usage", None)
    return ModelReply(
        text=text or "",
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _retry_delay(exc: Exception, attempt: int, backoff: float) -> float:
    retry_after = _retry_after_seconds(exc)
    if retry_after is not None:
        return retry_after
    return float(backoff * (2**attempt) * random.uniform(0.5, 1.5))


def _retry_after_seconds(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__

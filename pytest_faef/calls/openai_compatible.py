"""The lean path: chat completions to an OpenAI-compatible endpoint of the user's own, over aiohttp (issue 20).

For the one protocol a checkpoint served next to the tests speaks (vLLM, llama.cpp's server, Ollama's
``/v1``, text-generation-inference's Messages API), a request is one HTTP POST and a JSON reply. Through
litellm the same request costs a 2.4-4.8 s import and some 10 ms of CPU each on the two-core machine;
here about half a millisecond (docs/benchmarks.md). aiohttp, not httpx: both come with litellm, but
httpx's connection pool cost about 5 ms of CPU a request at 32 in flight, as much as litellm itself.

Served here: ``openai/...`` with an api base and ``hosted_vllm/...`` (which always has one); every other
provider, and these too with ``--faef-transport=litellm``, goes through litellm.

The responder's retries, backoff, error lines and the adaptive limit's feedback are shared by both
paths: the errors raised here carry the class names litellm maps every provider onto
(``RateLimitError``, ``AuthenticationError``...) and the answer's status and headers, whose
``Retry-After`` the responder reads. The request is the one litellm sends (the bare model name, the
same parameters and key), so the store keys and the replies are the same whichever path asked; the
cost comes from litellm's own price table (``calls/litellm_data``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_faef.calls import litellm_data
from pytest_faef.core.identity import provider
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest, Target, reply_count, reply_text

if TYPE_CHECKING:
    import aiohttp

# The providers served, with the variable their key is read from and what litellm sends without one.
PROVIDERS = {"openai": ("OPENAI_API_KEY", "no-key-set"), "hosted_vllm": ("HOSTED_VLLM_API_KEY", "fake-api-key")}


def serves(request: ModelRequest | Target) -> bool:
    """Whether the lean path can send ``request`` (or any request to a target): an OpenAI-compatible provider
    at a known endpoint."""
    return request.endpoint is not None and provider(request.model) in PROVIDERS


@dataclasses.dataclass(frozen=True)
class Answer:
    """An endpoint's unsuccessful answer: its status and headers (``Retry-After``), as the responder reads them."""

    status_code: int
    headers: Mapping[str, str]


class EndpointError(Exception):
    """An endpoint's refusal or failure, named as litellm names it, with its answer when there was one."""

    def __init__(self, message: str, *, response: Answer | None = None) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code if response is not None else None


# One class per litellm exception name the responder tells apart; the names are what it reads.
class BadRequestError(EndpointError): ...


class AuthenticationError(EndpointError): ...


class PermissionDeniedError(EndpointError): ...


class NotFoundError(EndpointError): ...


class UnprocessableEntityError(EndpointError): ...


class RateLimitError(EndpointError): ...


class InternalServerError(EndpointError): ...


class BadGatewayError(EndpointError): ...


class ServiceUnavailableError(EndpointError): ...


class Timeout(EndpointError): ...


class APIError(EndpointError): ...


_BY_STATUS: dict[int, type[EndpointError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: Timeout,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
    504: Timeout,
}


def error_for(status: int, headers: Mapping[str, str], content: bytes, url: str) -> EndpointError:
    """The error an unsuccessful answer stands for, with the endpoint's own message."""
    kind = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else BadRequestError)
    return kind(f"{status} from {url}: {_message(status, content)}", response=Answer(status, headers))


def _message(status: int, content: bytes) -> str:
    try:
        payload = json.loads(content)
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    text = content.decode(errors="replace").strip()
    return text.splitlines()[0][:300] if text else f"HTTP {status}"


def body(request: ModelRequest) -> dict[str, Any]:
    """The JSON litellm sends for ``request``: the model's bare name and the same parameters."""
    payload: dict[str, Any] = {
        "model": request.model.partition("/")[2],
        "messages": [{"role": role, "content": content} for role, content in request.sent_messages],
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.seed is not None:
        payload["seed"] = request.seed
    payload.update(request.params)  # --faef-model-param: OpenAI's names, as servers of its protocol read them
    return payload


def api_key(model: str) -> str:
    """The key litellm would send: the provider's key variable, else its placeholder."""
    variable, placeholder = PROVIDERS[provider(model) or ""]
    return os.environ.get(variable) or placeholder


def reply_from(payload: Any, model: str) -> ModelReply:
    """A chat completion's text, token usage and cost (at litellm's prices, where it has the model's)."""
    try:
        message = payload["choices"][0]["message"]
        text = reply_text(message["content"])
    except (TypeError, IndexError, KeyError) as exc:
        raise ModelCallError(f"unexpected response shape: {exc!r}") from None
    # A server with a reasoning parser gives the thinking apart: vLLM and llama.cpp as reasoning_content, others
    # (OpenRouter, newer vLLM) as reasoning (issue 27).
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    prompt_tokens = reply_count(usage.get("prompt_tokens"))
    completion_tokens = reply_count(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    reasoning_tokens = reply_count(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    return ModelReply(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=litellm_data.cost(model, prompt_tokens, completion_tokens) or 0.0,
        reasoning=reasoning if isinstance(reasoning, str) else "",
        reasoning_tokens=reasoning_tokens,
    )


@dataclasses.dataclass(kw_only=True)
class OpenAICompatibleClient:
    """Sends chat completions on a connection pool per event loop.

    aiohttp's pool belongs to the loop that opened its connections: the requests' loop keeps one for the
    session, and :meth:`aclose` closes it on that loop when the session ends.
    """

    timeout: float = 120.0
    _sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = dataclasses.field(default_factory=dict)

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            for stale in [known for known in self._sessions if known.is_closed()]:
                del self._sessions[stale]  # its connections died with their loop
            session = self._sessions[loop] = aiohttp.ClientSession(
                # No pool limit of its own: the limiter bounds the requests in flight to each endpoint.
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,  # the endpoint is the one named: no proxy variables in between
            )
        return session

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        """Raises an :class:`EndpointError` named as litellm names the failure, or ModelCallError on a
        reply of another shape."""
        import aiohttp

        assert request.endpoint is not None
        url = f"{request.endpoint.rstrip('/')}/chat/completions"
        headers = {**dict(request.headers), "Authorization": f"Bearer {api_key(request.model)}"}
        try:
            async with self._session().post(url, json=body(request), headers=headers) as response:
                content = await response.read()
                status, answer_headers = response.status, response.headers
        except asyncio.TimeoutError:
            raise Timeout(f"no answer from {url} within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:  # litellm names a refused or dropped connection so
            raise InternalServerError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        if status != 200:
            raise error_for(status, answer_headers, content, url)
        try:
            payload = json.loads(content)
        except ValueError:
            raise APIError(f"200 from {url} without a JSON body", response=Answer(status, answer_headers)) from None
        return reply_from(payload, request.model)

    async def aclose(self) -> None:
        """Close the pool of the running loop, if this client opened one there."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

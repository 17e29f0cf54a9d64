"""The lean path: chat completions to an OpenAI-compatible endpoint of the user's own, over httpx (issue 20).

For the one protocol a checkpoint served next to the tests speaks (vLLM, llama.cpp's server, Ollama's
``/v1``, text-generation-inference's Messages API), a request is one HTTP POST and a JSON reply. Through
litellm the same request costs a 2.4-4.8 s import and some 4-5 ms of Python each (docs/benchmarks.md);
here it costs well under a millisecond. Served here: ``openai/...`` with an api base and ``hosted_vllm/...``
(which always has one); every other provider, and these too with ``--faef-transport=litellm``, goes
through litellm.

The responder's retries, backoff, error lines and the adaptive limit's feedback are shared by both
paths: the errors raised here carry the class names litellm maps every provider onto
(``RateLimitError``, ``AuthenticationError``...) and the HTTP response, whose ``Retry-After`` the
responder reads. The request is the one litellm sends (the bare model name, the same parameters and
key), so the store keys and the replies are the same whichever path asked; the cost comes from
litellm's own price table (``calls/litellm_data``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import TYPE_CHECKING, Any

from pytest_faef.calls import litellm_data
from pytest_faef.core.identity import provider
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest

if TYPE_CHECKING:
    import httpx

# The providers served, with the variable their key is read from and what litellm sends without one.
PROVIDERS = {"openai": ("OPENAI_API_KEY", "no-key-set"), "hosted_vllm": ("HOSTED_VLLM_API_KEY", "fake-api-key")}


def serves(request: ModelRequest) -> bool:
    """Whether the lean path can send ``request``: an OpenAI-compatible provider at a known endpoint."""
    return request.endpoint is not None and provider(request.model) in PROVIDERS


class EndpointError(Exception):
    """An endpoint's refusal or failure, named as litellm names it, with the HTTP response when there was one."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
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


def error_for(response: httpx.Response, url: str) -> EndpointError:
    """The error an unsuccessful answer stands for, with the endpoint's own message."""
    status = response.status_code
    kind = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else BadRequestError)
    return kind(f"{status} from {url}: {_message(response)}", response=response)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    text = response.text.strip()
    return text.splitlines()[0][:300] if text else (response.reason_phrase or "no message")


def body(request: ModelRequest) -> dict[str, Any]:
    """The JSON litellm sends for ``request``: the model's bare name and the same parameters."""
    payload: dict[str, Any] = {
        "model": request.model.partition("/")[2],
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.seed is not None:
        payload["seed"] = request.seed
    return payload


def api_key(model: str) -> str:
    """The key litellm would send: the provider's key variable, else its placeholder."""
    variable, placeholder = PROVIDERS[provider(model) or ""]
    return os.environ.get(variable) or placeholder


def reply_from(payload: Any, model: str) -> ModelReply:
    """A chat completion's text, token usage and cost (at litellm's prices, where it has the model's)."""
    try:
        text = payload["choices"][0]["message"]["content"]
    except (TypeError, IndexError, KeyError) as exc:
        raise ModelCallError(f"unexpected response shape: {exc!r}") from None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    return ModelReply(
        text=text or "",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=litellm_data.cost(model, prompt_tokens, completion_tokens) or 0.0,
    )


@dataclasses.dataclass(kw_only=True)
class OpenAICompatibleClient:
    """Sends one chat completion at a time per call, on a connection pool per event loop.

    httpx's pool belongs to the loop that opened its connections: the requests' loop keeps one for the
    session, and :meth:`aclose` closes it on that loop when the session ends.
    """

    timeout: float = 120.0
    _clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = dataclasses.field(default_factory=dict)

    def _client(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for stale in [known for known in self._clients if known.is_closed()]:
                del self._clients[stale]  # its connections died with their loop
            # No pool limit of its own: the limiter bounds the requests in flight to each endpoint.
            client = self._clients[loop] = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                trust_env=False,  # the endpoint is the one named: no proxy variables in between
            )
        return client

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        """Raises an :class:`EndpointError` named as litellm names the failure, or ModelCallError on a
        reply of another shape."""
        import httpx

        assert request.endpoint is not None
        url = f"{request.endpoint.rstrip('/')}/chat/completions"
        headers = {"Authorization": f"Bearer {api_key(request.model)}"}
        try:
            response = await self._client().post(url, json=body(request), headers=headers)
        except httpx.TimeoutException as exc:
            raise Timeout(f"no answer from {url} within {self.timeout:g} s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # litellm names a refused or dropped connection so, whatever the SDK said
            raise InternalServerError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise error_for(response, url)
        try:
            payload = response.json()
        except ValueError:
            raise APIError(f"200 from {url} without a JSON body", response=response) from None
        return reply_from(payload, request.model)

    async def aclose(self) -> None:
        """Close the pool of the running loop, if this client opened one there."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

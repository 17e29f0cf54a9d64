"""Sending requests: litellm or the lean OpenAI-compatible path, with retries, and the store and record mode
in front of them.

``ModelResponder`` sends a request with retries: to an OpenAI-compatible endpoint of the user's own over
the plugin's own HTTP client (``calls/openai_compatible``), to every other provider through litellm.
``RecordedResponder`` puts the response store and the record mode in front of it and bounds
concurrency. litellm is imported only here and only when a request needs it, so a pytest run with the
plugin installed and no suite files selected never pays for it, nor does a run whose every request
takes the lean path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pytest_faef.calls import openai_compatible
from pytest_faef.calls.concurrency import DEFAULT_MAX_CONCURRENCY, Limiter
from pytest_faef.calls.litellm_lifecycle import close_litellm_clients
from pytest_faef.calls.litellm_warnings import LITELLM_TYPES_WARNING, LITELLM_TYPES_WARNING_MODULE
from pytest_faef.core.identity import LOCAL_PROVIDER, ModelIdentity, provider
from pytest_faef.core.ledger import RequestLedger
from pytest_faef.core.requests import (
    FOLLOW_UP,
    ModelCallError,
    ModelReply,
    ModelRequest,
    Target,
    budget_reached,
    reply_count,
    reply_text,
)

if TYPE_CHECKING:
    from pytest_faef.calls.store import ResponseStore

NO_KEY = "no-key-set"  # the api key sent to an endpoint of the user's own when no key variable is set


class MissingCredentials(Exception):
    """A model that will be asked has no key in the environment: the run stops before any request."""

    def __init__(self, target: Target, variables: list[str], *, missing: int = 0) -> None:
        self.target = target
        self.variables = variables
        names = " and ".join(variables)
        needs = f"{missing} of its requests are not in the response store" if missing else "it will be asked"
        super().__init__(
            f"{target.model} needs {names}, which {'is' if len(variables) == 1 else 'are'} not set: {needs}"
        )


def missing_credentials(target: Target) -> list[str]:
    """The environment variables ``target`` needs for a request and lacks, as litellm tells.

    Local models need none, and neither may a model at an endpoint of the user's own (``*_API_BASE``):
    many local servers take no key. Variables that name an endpoint are not credentials.
    """
    if target.endpoint is not None or provider(target.model) == LOCAL_PROVIDER:
        return []
    return _missing_keys(target.model)


def _missing_keys(model: str) -> list[str]:
    litellm = import_litellm()
    try:
        found = litellm.validate_environment(model=model)
    except Exception:  # a provider litellm cannot check: the first request will tell
        return []
    missing = found.get("missing_keys") or ()
    return [str(name) for name in missing if not str(name).endswith(("_API_BASE", "_BASE_URL"))]


@dataclasses.dataclass
class CallStats:
    """Counts for the progress bar and the summary; mutated only on the event loop's thread."""

    total: int = 0  # requests the submitted items need
    done: int = 0
    cache_hits: int = 0
    sent: int = 0
    retries: int = 0
    errors: int = 0
    cost: float = 0.0  # US dollars of the replies received in this process, where litellm knows the price
    limits: dict[str, int] = dataclasses.field(default_factory=dict)  # requests allowed in flight, per model
    # Every attempt sent, by model and kind, with the usage of those answered (issue 32).
    requests: RequestLedger = dataclasses.field(default_factory=RequestLedger)


# Exception class names (litellm maps every provider onto these) worth another try.
_FATAL = frozenset({"AuthenticationError", "PermissionDeniedError"})
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
# The answers of an endpoint that has more than it can take: the adaptive limit backs off on them.
_OVERLOAD = frozenset({"RateLimitError", "ServiceUnavailableError", "Timeout"})
# A 429 that is no rate limit but an account out of credit (OpenAI's insufficient_quota): no wait can fix it.
_NO_QUOTA = re.compile(r"insufficient_quota|exceeded your current quota", re.IGNORECASE)
# Rate-limited waits stop doubling after this many (1 s x 2**4 = 16 s of backoff at most).
_MAX_DOUBLINGS = 4
# What providers' SDKs say when no key is set at all: no retry can fix it (issue 12).
_MISSING_CREDENTIALS = re.compile(r"missing credentials|api_key client option must be set", re.IGNORECASE)
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

        warnings.filterwarnings(
            "ignore", message=LITELLM_TYPES_WARNING, category=UserWarning, module=LITELLM_TYPES_WARNING_MODULE
        )
        litellm.telemetry = False
        litellm.suppress_debug_info = True
        from pytest_faef.calls import local_model

        local_model.register(litellm)
        return litellm


@dataclasses.dataclass(kw_only=True)
class ModelResponder:
    """Sends requests, retrying transient failures with backoff and jitter, by the lean path where it serves
    (``transport="auto"``) and through litellm otherwise.

    Timeouts, connection errors, 429 and 5xx answers are retried, honouring ``Retry-After``. Both paths
    raise errors under litellm's class names, so they are retried, backed off and reported alike.
    """

    max_retries: int = 3
    timeout: float = 120.0
    backoff: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    stats: CallStats = dataclasses.field(default_factory=CallStats)
    # Told of every reply and every overload (429, 503, timeout), so that it can adapt (issue 17).
    limiter: Limiter | None = None
    # "auto": OpenAI-compatible endpoints of the user's own by the lean path, the rest through litellm;
    # "litellm": everything through litellm (--faef-transport).
    transport: str = "auto"
    _keyless_targets: dict[Target, bool] = dataclasses.field(default_factory=dict)
    _lean: openai_compatible.OpenAICompatibleClient | None = None

    def lean(self, request: ModelRequest | Target) -> bool:
        """Whether ``request`` (or every request to a target) goes by the lean path."""
        return self.transport == "auto" and openai_compatible.serves(request)

    def _sender(self, request: ModelRequest) -> Callable[[], Awaitable[ModelReply]]:
        """One attempt at ``request``, by the path it takes."""
        if self.lean(request):
            if self._lean is None:
                self._lean = openai_compatible.OpenAICompatibleClient(timeout=self.timeout)
            client = self._lean
            return lambda: client.acomplete(request)
        litellm = import_litellm()
        kwargs = _litellm_arguments(request, self.timeout)
        if request.endpoint is not None and self._keyless(request.target):
            # An endpoint of the user's own may take no key (vLLM, Ollama, llama.cpp's server), but the
            # provider's SDK refuses to send without one: give it a placeholder. A server that wants a
            # real key answers 401, which stops the run with one line.
            kwargs["api_key"] = NO_KEY

        async def send() -> ModelReply:
            # litellm's own timeout bounds the wait for each byte, not the answer: an endpoint that drips a byte a
            # second would hold the run for ever. Each attempt gets the whole of --faef-timeout, no more (issue 33).
            try:
                response = await asyncio.wait_for(litellm.acompletion(**kwargs), timeout=self.timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no answer within {self.timeout:g} s (--faef-timeout)") from None
            return _reply_from(response, litellm)

        return send

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        send = self._sender(request)
        attempt = 0  # failed attempts, counted against max_retries
        limited = 0  # answers "rate limit reached", which are not failures
        waited_for_limit = 0.0
        endpoint = endpoint_key(request)
        while True:
            try:
                self.stats.sent += 1
                self.stats.requests.sent(request.model, retry=bool(attempt or limited))
                try:
                    reply = await send()
                except Exception:
                    self.stats.requests.failed(request.model)
                    raise
                self.stats.requests.answered(request.model, reply)
                if self.limiter is not None:
                    self.limiter.reply(endpoint)
                return reply
            except ModelCallError as exc:  # a reply that came but cannot be read: asking again would not help
                raise ModelCallError(f"{request.model}: {redact(str(exc))}") from None
            except Exception as exc:
                name = type(exc).__name__
                message = redact(_first_line(exc))
                if name in _FATAL or _MISSING_CREDENTIALS.search(str(exc)) or _NO_QUOTA.search(str(exc)):
                    raise ModelCallError(f"{request.model}: {name}: {message}", fatal=True) from None
                overloaded = name in _OVERLOAD or isinstance(exc, TimeoutError)
                if self.limiter is not None and overloaded:
                    self.limiter.overload(endpoint, _retry_after_seconds(exc))
                tries = f" after {attempt + limited + 1} attempts" if attempt + limited else ""
                if name == "RateLimitError":
                    # A rate limit costs time, not items: the request waits as long as the endpoint asks,
                    # within the time one request may take (--faef-timeout), whatever --faef-max-retries says.
                    delay = _retry_delay(exc, min(limited, _MAX_DOUBLINGS), self.backoff)
                    if waited_for_limit + delay > self.timeout:
                        raise ModelCallError(
                            f"{request.model}: {name}{tries} (rate-limited for {waited_for_limit:.0f} s, "
                            f"within --faef-timeout {self.timeout:g} s): {message}"
                        ) from None
                    waited_for_limit += delay
                    limited += 1
                    self.stats.retries += 1
                    await self.sleep(delay)  # keeping its room: see below
                    continue
                transient = name in _TRANSIENT or isinstance(exc, (TimeoutError, ConnectionError))
                if not transient or attempt >= self.max_retries:
                    raise ModelCallError(f"{request.model}: {name}{tries}: {message}") from None
                self.stats.retries += 1
                if self.limiter is None or overloaded:
                    # An endpoint that has more than it can take keeps the room of the requests it turned
                    # away while they back off: given to others, each would be turned away in turn.
                    await self.sleep(_retry_delay(exc, attempt, self.backoff))
                else:  # a request that merely failed leaves its room to others while it backs off
                    async with self.limiter.released(endpoint):
                        await self.sleep(_retry_delay(exc, attempt, self.backoff))
                attempt += 1

    def _keyless(self, target: Target) -> bool:
        known = self._keyless_targets.get(target)
        if known is None:
            known = self._keyless_targets[target] = bool(_missing_keys(target.model))
        return known

    def complete(self, request: ModelRequest) -> ModelReply:
        """The same request, from synchronous code (not from inside a running event loop)."""

        async def once() -> ModelReply:
            try:
                return await self.acomplete(request)
            finally:
                await self.aclose()

        return asyncio.run(once())

    async def aclose(self) -> None:
        """Close the connections opened on the running loop, by either path (the end of a session)."""
        if self._lean is not None:
            await self._lean.aclose()
        await close_litellm_clients()


@dataclasses.dataclass(kw_only=True)
class RecordedResponder:
    """The response store and record mode in front of a responder, with bounded concurrency.

    Record modes, as pytest-recording users know them: ``none`` replays only; ``once`` records
    only into a store that did not exist when the run started; ``new`` reuses stored replies and
    requests the missing ones; ``all`` requests everything again.

    A request asked again while the same one is in flight waits for that one's reply instead of
    being sent twice: several models judged by one judge ask it the same calibration questions,
    and two models often give the same refusal.
    """

    responder: ModelResponder
    store: ResponseStore | None
    record_mode: str = "new"
    concurrency: int | None = 16  # requests in flight per endpoint; None: found by itself (issue 17)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    # Stop sending new requests once the replies of this run cost this much (US dollars; None: no budget).
    budget: float | None = None
    # The run this process belongs to: xdist workers add up what they spend in the store under it.
    run: str = ""
    # Replies recorded before this moment come from an earlier session: they are "replayed".
    session_started: float = dataclasses.field(default_factory=time.time)
    # Models whose replies from earlier sessions are not replayed in this one: the drift check
    # found that they answer differently now (docs/store.md).
    stale: set[Target] = dataclasses.field(default_factory=set)
    _limiter: Limiter | None = None
    _fatal: str | None = None
    _closing: bool = False  # the session is ending: no request not yet sent goes out
    _in_flight: dict[str, asyncio.Future[ModelReply]] = dataclasses.field(default_factory=dict)
    _elsewhere_by_target: dict[Target, str] = dataclasses.field(default_factory=dict)

    @property
    def stats(self) -> CallStats:
        return self.responder.stats

    async def aclose(self) -> None:
        """Close what the responder keeps open on the running loop (the end of a session)."""
        await self.responder.aclose()

    async def settle(self, grace: float) -> None:
        """At the end of a session (-x, Ctrl-C, items that errored while others of theirs were asked): send nothing
        more, and wait up to ``grace`` seconds for the requests already sent, so that their replies, paid for, are
        stored for the next run rather than dropped (issue 32)."""
        self._closing = True
        sending = list(self._in_flight.values())
        if sending:
            await asyncio.wait(sending, timeout=grace)

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        try:
            reply = await self._reply(request)
        except ModelCallError:
            self.stats.errors += 1
            raise
        finally:
            self.stats.done += 1
        return reply

    def stored(self, request: ModelRequest) -> ModelReply | None:
        """The stored reply this run may use for ``request``: none in record mode ``all``, and none
        recorded before this session for a model found stale."""
        if self.store is None or self.record_mode == "all":
            return None
        stored = self.store.get(request)
        if stored is None:
            return None
        # Recorded before this session began, or by another session while it ran: not asked by this run.
        replayed = stored.recorded_at < self.session_started or stored.recorded_by not in ("", self.run)
        if replayed and request.target in self.stale:
            return None
        return dataclasses.replace(stored, replayed=replayed)

    async def _reply(self, request: ModelRequest) -> ModelReply:
        stored = self.stored(request)
        if stored is not None:
            self.stats.cache_hits += 1
            return stored
        if self.record_mode == "none" or (self.record_mode == "once" and self.store is not None and self.store.existed):
            where = f"in {self.store.path}" if self.store is not None else "(there is no response store yet)"
            raise ModelCallError(
                f"{request.model}: no stored reply {where} and record mode {self.record_mode!r} sends no requests"
                + self._elsewhere(request.target)
            )
        if self._fatal is not None:
            raise ModelCallError(self._fatal, fatal=True)
        key = request.key()
        shared = self._in_flight.get(key)
        if shared is not None:
            # Shielded: a waiter cancelled (a test stopped early) must not cancel the other waiters' request.
            reply = await asyncio.shield(shared)
            self.stats.cache_hits += 1
            return dataclasses.replace(reply, cached=True)
        sending = asyncio.ensure_future(self._send(request))
        self._in_flight[key] = sending
        sending.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(sending)

    def _elsewhere(self, target: Target) -> str:
        """Where the store does hold replies of this model, when not for this endpoint and revision: a
        replay of a store recorded against another endpoint finds nothing, and should say why."""
        if self.store is None:
            return ""
        if target not in self._elsewhere_by_target:
            others = [
                (endpoint, revision, count)
                for endpoint, revision, count in self.store.stored_for(target.model)
                if (endpoint, revision) != (target.endpoint, target.revision)
            ]
            hint = ""
            if others:
                endpoint, revision, count = others[0]
                there = ModelIdentity(endpoint=endpoint, revision=revision).describe() or "at no endpoint, no revision"
                here = ModelIdentity(endpoint=target.endpoint, revision=target.revision).describe()
                hint = (
                    f"; the store holds {count} replies of {target.model} {there}, but this run asks it "
                    f"{here or 'at no endpoint, no revision'}: give the same endpoint and revision to replay them"
                )
            self._elsewhere_by_target[target] = hint
        return self._elsewhere_by_target[target]

    async def _send(self, request: ModelRequest) -> ModelReply:
        reply = await self.ask(request)
        if self.store is not None:
            self.store.put(request, reply)
        return reply

    async def ask(self, request: ModelRequest) -> ModelReply:
        """Send ``request`` to its model now, within the concurrency limit, whatever the store holds.

        The reply is not stored: the drift check asks this way and decides what to keep.
        """
        limiter = self.limiter
        endpoint = endpoint_key(request)
        async with limiter.slot(endpoint, follow_up=FOLLOW_UP.get()):
            if self._fatal is not None:
                raise ModelCallError(self._fatal, fatal=True)
            if self._closing:
                raise ModelCallError(f"{request.model}: not sent: the session is ending")
            self.stats.limits[request.model] = limiter.current(endpoint)
            if self.budget is not None and self.spent() >= self.budget:
                raise ModelCallError(f"{request.model}: not sent: {budget_reached(self.budget)}")
            try:
                reply = await self.responder.acomplete(request)
            except ModelCallError as exc:
                if exc.fatal:
                    self._fatal = str(exc)
                raise
            self.stats.cost += reply.cost
            if reply.cost and self.store is not None and self.run:
                self.store.add_spend(self.run, reply.cost)
        return dataclasses.replace(reply, recorded_at=time.time(), recorded_by=self.run)

    def spent(self) -> float:
        """What this run's replies have cost so far, in US dollars: every xdist worker's, through the store."""
        if self.store is not None and self.run and not self.store.read_only:
            return self.store.spent(self.run)
        return self.stats.cost

    @property
    def limiter(self) -> Limiter:
        """The limit on requests in flight per endpoint; created on the loop that uses it, shared with the
        model responder so that it hears of every reply and every overload."""
        if self._limiter is None:
            self._limiter = Limiter(fixed=self.concurrency, maximum=self.max_concurrency)
            if isinstance(self.responder, ModelResponder):
                self.responder.limiter = self._limiter
        return self._limiter


def _litellm_arguments(request: ModelRequest, timeout: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": role, "content": content} for role, content in request.sent_messages],
        "temperature": request.temperature,
        "timeout": timeout,
        # Retries are ours (with Retry-After and the store in mind); the SDK's would multiply them.
        "max_retries": 0,
    }
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    if request.endpoint is not None:
        # The endpoint is part of the request's key; sending it explicitly makes the request go
        # exactly where the key says, whatever litellm would have read from the environment.
        kwargs["api_base"] = request.endpoint
    if request.seed is not None:
        # Providers without seeds still differ by the request's key in the store; litellm drops it for them.
        kwargs.update(seed=request.seed, drop_params=True)
    metadata: dict[str, Any] = {}
    if request.choices is not None:
        # litellm keeps metadata to itself (and custom providers); it is not sent upstream.
        metadata["faef_choices"] = list(request.choices)
    if request.params:
        # --faef-model-param (issue 27): litellm maps each onto its provider's name for it. The local model reads
        # them from the metadata too, where litellm's filtering of a custom provider's parameters cannot drop them.
        kwargs.update(request.params)
        metadata["faef_params"] = dict(request.params)
    if request.headers:
        kwargs["extra_headers"] = dict(request.headers)
    if request.sample:
        metadata["faef_sample"] = request.sample  # the local model draws each sample with its own seed (issue 28)
    if metadata:
        kwargs["metadata"] = metadata
    return kwargs


def _reply_from(response: Any, litellm: Any) -> ModelReply:
    try:
        message = response.choices[0].message
        text = reply_text(message.content)
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        raise ModelCallError(f"unexpected response shape: {exc}") from None
    # litellm gives every provider's thinking as reasoning_content (issue 27).
    reasoning = getattr(message, "reasoning_content", None) or ""
    usage = getattr(response, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    try:
        cost = float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # litellm raises for models it has no price for
        cost = 0.0
    return ModelReply(
        text=text,
        prompt_tokens=reply_count(getattr(usage, "prompt_tokens", 0)),
        completion_tokens=reply_count(getattr(usage, "completion_tokens", 0)),
        cost=cost,
        reasoning=reasoning if isinstance(reasoning, str) else "",
        reasoning_tokens=reply_count(getattr(details, "reasoning_tokens", 0)),
    )


def _retry_delay(exc: Exception, attempt: int, backoff: float) -> float:
    """The wait before another attempt: exponential backoff with jitter, or what the endpoint asked for.

    A ``Retry-After`` is the least wait, plus jitter up to half the backoff: a rate limit's answer
    (``retry-after-ms`` is the time to its next token) is the same for every request it turns away at
    once, and requests that all came back when it said would all but one be turned away again.
    """
    retry_after = _retry_after_seconds(exc)
    if retry_after is not None:
        return retry_after + float(backoff * (2 ** min(attempt, 2)) * random.uniform(0.0, 0.5))
    return float(backoff * (2**attempt) * random.uniform(0.5, 1.5))


def _retry_after_seconds(exc: Exception) -> float | None:
    """The wait an overloaded endpoint asked for: ``retry-after-ms`` (OpenAI's), else ``Retry-After`` in seconds."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = headers.get(name)
            if value is not None:
                return max(0.0, float(value) * scale)
        except (TypeError, ValueError):
            continue
    return None


def endpoint_key(request: ModelRequest) -> tuple[str, str | None]:
    """What has a rate limit of its own: a model at an endpoint (the model under test and the judge differ)."""
    return (request.model, request.endpoint)


def _first_line(exc: Exception) -> str:
    """An error's message as one line: no traceback an SDK folded into it, at most 300 characters."""
    text = str(exc).split("Traceback (most recent call last)")[0].strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__

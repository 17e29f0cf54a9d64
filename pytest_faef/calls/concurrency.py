"""How many requests to keep in flight to one endpoint: a fixed number, or one found by itself (issue 17).

Against a real provider the limit is the account's rate limit and the model's latency, not the
client. The adaptive limit starts modestly and doubles each round while replies come back without
429s, 503s or timeouts (a slow start); after the first overload it grows by a twentieth a round
while throughput keeps rising with it, and when a step up brings no more replies a second it holds
for a few rounds before it tries again; every overload cuts it by a tenth (at most once a round, so
one burst of 429s is one cut), and a ``Retry-After`` pauses new requests to that endpoint until it
has passed. A round is one limit's worth of replies: about one latency.

``AdaptiveLimit`` is the arithmetic on an injected clock, free of asyncio so that it can be tested
exhaustively; ``Limiter`` holds one per endpoint and makes requests wait for a slot.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio is imported where a run starts: the option table reads this module's defaults
    import asyncio

DEFAULT_MAX_CONCURRENCY = 256
START = 4  # requests in flight to a new endpoint, before anything is known of it
DECREASE = 0.9  # the limit after an overload, as a share of the limit before it
INCREASE = 0.05  # growth per round after the first overload, as a share of the limit (at least one)
RISING = 1.02  # after a step up, a round's throughput must beat the last one's by this much to go on
HOLD = 4  # rounds to hold a limit that a step up did not pay for, before trying again


@dataclasses.dataclass(kw_only=True)
class AdaptiveLimit:
    """The limit for one endpoint, as a function of what its replies said and when."""

    maximum: int = DEFAULT_MAX_CONCURRENCY
    limit: float = START
    slow_start: bool = True
    # The round in progress: when it began, its replies, and whether it saw an overload.
    round_started: float = 0.0
    round_replies: int = 0
    round_overloaded: bool = False
    last_throughput: float = 0.0
    stepped_up: bool = False  # the last round ended with a step up, whose worth this round shows
    holding: int = 0  # rounds left before the next step up
    paused_until: float = 0.0  # no new request before this moment (Retry-After)

    def __post_init__(self) -> None:
        self.limit = min(float(self.maximum), max(1.0, self.limit))

    @property
    def current(self) -> int:
        """Requests that may be in flight now."""
        return max(1, min(self.maximum, int(self.limit)))

    def reply(self, now: float) -> None:
        """A request succeeded."""
        if self.round_replies == 0 and self.round_started == 0.0:
            self.round_started = now
        self.round_replies += 1
        if self.round_replies >= self.current:
            self._end_round(now)

    def overload(self, now: float, retry_after: float | None = None) -> None:
        """A 429, a 503 or a timeout: the endpoint has more than it can take."""
        if retry_after is not None and retry_after > 0:
            self.paused_until = max(self.paused_until, now + retry_after)
        self.slow_start = False
        if not self.round_overloaded:  # one cut per round: a burst of 429s answers one excess
            self.round_overloaded = True
            self.limit = max(1.0, self.limit * DECREASE)

    def wait(self, now: float) -> float:
        """Seconds until a new request may start (0 when it may start now), to the nanosecond: ``now + 30 - now``
        is 30.000000000000014 in floating point, longer than the endpoint asked for (found by hypothesis)."""
        return max(0.0, round(self.paused_until - now, 9))

    def _end_round(self, now: float) -> None:
        elapsed = max(now - self.round_started, 1e-9)
        throughput = self.round_replies / elapsed
        grow = False
        if self.round_overloaded:
            self.holding = 0
        elif self.slow_start:
            self.limit = min(float(self.maximum), self.limit * 2)
        elif self.stepped_up and throughput < self.last_throughput * RISING:
            self.holding = HOLD  # more in flight brought no more replies: the endpoint is full
        elif self.holding:
            self.holding -= 1
        else:
            grow = True
            self.limit = min(float(self.maximum), self.limit + max(1.0, self.limit * INCREASE))
        self.stepped_up = grow
        self.last_throughput = throughput
        self.round_started = now
        self.round_replies = 0
        self.round_overloaded = False


@dataclasses.dataclass(kw_only=True)
class _Endpoint:
    """One endpoint's requests in flight and the requests waiting for room, first come first served."""

    limit: AdaptiveLimit
    in_flight: int = 0
    # Requests let in first: retries coming back from a backoff (at the front) and follow-ups, requests that
    # continue an item already begun (in order); then the requests not begun, in order.
    first: collections.deque[asyncio.Future[None]] = dataclasses.field(default_factory=collections.deque)
    waiting: collections.deque[asyncio.Future[None]] = dataclasses.field(default_factory=collections.deque)
    wakeup: asyncio.TimerHandle | None = None  # the end of a Retry-After pause, when one is pending


@dataclasses.dataclass(kw_only=True)
class Limiter:
    """Bounds the requests in flight to each endpoint: ``fixed`` of them, or an adaptive limit each.

    Used from one event loop. Each endpoint keeps its waiting requests in order and lets in exactly as
    many as there is room for, so thousands of waiting requests cost nothing while they wait.
    """

    fixed: int | None = None  # None: adaptive
    maximum: int = DEFAULT_MAX_CONCURRENCY
    clock: Callable[[], float] = time.monotonic
    _endpoints: dict[Hashable, _Endpoint] = dataclasses.field(default_factory=dict)

    def _endpoint(self, endpoint: Hashable) -> _Endpoint:
        found = self._endpoints.get(endpoint)
        if found is None:
            found = self._endpoints[endpoint] = _Endpoint(limit=AdaptiveLimit(maximum=self.maximum))
        return found

    def limit(self, endpoint: Hashable) -> AdaptiveLimit:
        return self._endpoint(endpoint).limit

    def current(self, endpoint: Hashable) -> int:
        """Requests allowed in flight to ``endpoint`` now."""
        if self.fixed is not None:
            return self.fixed
        return self.limit(endpoint).current

    def limits(self) -> dict[Hashable, int]:
        """The current limit of every endpoint asked so far (for the progress bar)."""
        return {endpoint: self.current(endpoint) for endpoint in self._endpoints}

    @contextlib.asynccontextmanager
    async def slot(self, endpoint: Hashable, *, follow_up: bool = False) -> AsyncIterator[None]:
        """Wait for room to send one request to ``endpoint``, and hold it while the request runs.

        A ``follow_up`` (the judge of an answer just received) goes ahead of the requests of items not
        begun, so that items finish in the order they started and their tests report as they go.
        """
        state = self._endpoint(endpoint)
        await self._acquire(endpoint, state, place="follow-up" if follow_up else "last")
        try:
            yield
        finally:
            state.in_flight -= 1
            self._admit(endpoint, state)

    @contextlib.asynccontextmanager
    async def released(self, endpoint: Hashable) -> AsyncIterator[None]:
        """Inside a ``slot``: give the room back while the request waits to be retried, and take it again
        after, ahead of the requests not sent yet. A request backing off holds no room that others could use."""
        state = self._endpoint(endpoint)
        state.in_flight -= 1
        self._admit(endpoint, state)
        try:
            yield
        finally:
            try:
                await self._acquire(endpoint, state, place="front")
            except BaseException:
                state.in_flight += 1  # the slot gives back the room it holds as it closes
                raise

    async def _acquire(self, endpoint: Hashable, state: _Endpoint, *, place: str) -> None:
        """``place``: "front" (a retry), "follow-up" (after the other follow-ups) or "last"."""
        if not state.first and not state.waiting and self._room(endpoint, state):
            state.in_flight += 1
            return
        import asyncio

        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if place == "front":
            state.first.appendleft(waiter)
        elif place == "follow-up":
            state.first.append(waiter)
        else:
            state.waiting.append(waiter)
        self._admit(endpoint, state)  # room, or a pause whose end must wake the waiters
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in state.first:
                state.first.remove(waiter)
            elif waiter in state.waiting:
                state.waiting.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                state.in_flight -= 1  # admitted, but gone before it could use the room
                self._admit(endpoint, state)
            raise

    def reply(self, endpoint: Hashable) -> None:
        if self.fixed is None:
            state = self._endpoint(endpoint)
            state.limit.reply(self.clock())
            self._admit(endpoint, state)  # the limit may have grown

    def overload(self, endpoint: Hashable, retry_after: float | None) -> None:
        if self.fixed is None:
            self._endpoint(endpoint).limit.overload(self.clock(), retry_after)

    def _room(self, endpoint: Hashable, state: _Endpoint) -> bool:
        if self.fixed is None and state.limit.wait(self.clock()) > 0:
            return False
        return state.in_flight < self.current(endpoint)

    def _admit(self, endpoint: Hashable, state: _Endpoint) -> None:
        """Let in as many waiting requests as there is room for; after a pause, come back when it ends."""
        pause = state.limit.wait(self.clock()) if self.fixed is None else 0.0
        if pause > 0:
            if state.wakeup is None and (state.first or state.waiting):
                import asyncio

                loop = asyncio.get_running_loop()
                state.wakeup = loop.call_later(pause, self._resume, endpoint, state)
            return
        while (state.first or state.waiting) and state.in_flight < self.current(endpoint):
            waiter = (state.first or state.waiting).popleft()
            if not waiter.done():
                state.in_flight += 1
                waiter.set_result(None)

    def _resume(self, endpoint: Hashable, state: _Endpoint) -> None:
        state.wakeup = None
        self._admit(endpoint, state)

"""The adaptive limit on requests in flight, and the limiter that holds requests to it (issue 17)."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.calls.concurrency import DECREASE, START, AdaptiveLimit, Limiter
from pytest_faef.core.evaluation import EvaluationSettings, evaluate_item
from pytest_faef.core.requests import FOLLOW_UP, ModelReply, ModelRequest
from pytest_faef.core.suite import PairedItem

# --- the arithmetic -------------------------------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["reply", "overload"]),
        st.floats(min_value=0.001, max_value=5.0),  # time since the last event
        st.none() | st.floats(min_value=0.0, max_value=30.0),  # Retry-After
    ),
    max_size=400,
)


@given(events, st.integers(min_value=1, max_value=300))
def test_the_limit_never_leaves_one_to_the_maximum(
    sequence: list[tuple[str, float, float | None]], maximum: int
) -> None:
    limit = AdaptiveLimit(maximum=maximum)
    now = 100.0
    for kind, gap, retry_after in sequence:
        now += gap
        if kind == "reply":
            limit.reply(now)
        else:
            limit.overload(now, retry_after)
        assert 1 <= limit.current <= maximum
        assert limit.wait(now) <= (retry_after or 0.0) or kind == "reply" or limit.wait(now) <= 30.0


@given(st.integers(min_value=2, max_value=40), st.integers(min_value=1, max_value=60))
def test_a_burst_of_overloads_in_one_round_is_one_cut_and_each_new_burst_another(grown: int, burst: int) -> None:
    limit = AdaptiveLimit(limit=grown * 4)
    before = limit.limit
    for second in range(burst):  # a burst of 429s within one round
        limit.overload(10.0 + second * 0.001)
    assert limit.limit == pytest.approx(max(1.0, before * DECREASE))
    for _ in range(limit.current):  # the round ends
        limit.reply(11.0)
    cut_once = limit.limit
    limit.overload(12.0)
    assert limit.limit == pytest.approx(max(1.0, cut_once * DECREASE))


def test_slow_start_doubles_each_round_until_the_first_overload() -> None:
    limit = AdaptiveLimit()
    seen = []
    now = 0.0
    for _ in range(5):
        seen.append(limit.current)
        for _ in range(limit.current):
            now += 1.0 / limit.current
            limit.reply(now)
    assert seen == [START, START * 2, START * 4, START * 8, START * 16]


def test_after_overloads_it_grows_back_while_throughput_rises_and_holds_when_it_does_not() -> None:
    limit = AdaptiveLimit(limit=64)
    limit.overload(0.0)
    now = 0.0
    for _ in range(6):  # a round at each limit takes one second: throughput rises with the limit
        start = limit.current
        for _ in range(start):
            now += 1.0 / start
            limit.reply(now)
    grown = limit.current
    assert grown > int(64 * DECREASE) + 2
    seen = []
    for _ in range(12):  # the endpoint is saturated: more in flight, no more replies a second
        for _ in range(limit.current):
            now += 1.0 / grown
            limit.reply(now)
        seen.append(limit.current)
    # Each step up that brings nothing is followed by rounds held at that limit.
    assert max(seen) <= grown * 1.25
    assert sum(1 for before, after in itertools.pairwise(seen) if after > before) <= 3


def test_retry_after_pauses_new_requests_until_it_has_passed() -> None:
    limit = AdaptiveLimit()
    limit.overload(50.0, retry_after=2.5)
    assert limit.wait(50.0) == pytest.approx(2.5)
    assert limit.wait(51.0) == pytest.approx(1.5)
    assert limit.wait(52.6) == 0.0


# --- against a rate-limited endpoint, simulated ---------------------------------------------------------------


def simulate(
    *, rate: float, latency: float, requests: int, change: tuple[float, float] | None = None
) -> tuple[float, list[tuple[float, int]]]:
    """Discrete events: a token bucket endpoint (429 at once, Retry-After to the next token) and a client
    that starts requests while the limit allows. (replies a second from the first to the last, trace)."""
    limit = AdaptiveLimit()
    tokens, refilled = rate, 0.0
    now, in_flight, done, waiting = 0.0, 0, 0, requests
    retries: list[float] = []
    pending: list[tuple[float, str, float]] = []
    first = last = None
    trace = []
    while done < requests:
        waiting += sum(1 for when in retries if when <= now)
        retries = [when for when in retries if when > now]
        while waiting and in_flight < limit.current and limit.wait(now) == 0:
            waiting -= 1
            in_flight += 1
            current_rate = rate if change is None or now < change[0] else change[1]
            tokens = min(current_rate, tokens + (now - refilled) * current_rate)
            refilled = now
            if tokens >= 1:
                tokens -= 1
                heapq.heappush(pending, (now + latency, "reply", 0.0))
            else:
                # retry-after-ms, as the loopback server and OpenAI send it: the wait for the next token.
                heapq.heappush(pending, (now + 0.005, "429", (1 - tokens) / current_rate))
        if not pending:
            now = min([*retries, now + 0.01])
            continue
        now, kind, retry_after = heapq.heappop(pending)
        in_flight -= 1
        if kind == "reply":
            done += 1
            limit.reply(now)
            first = now if first is None else first
            last = now
        else:
            limit.overload(now, retry_after)
            retries.append(now + retry_after)
        trace.append((now, limit.current))
    assert first is not None and last is not None
    return requests / (last - first), trace


def test_it_sustains_most_of_an_endpoints_rate_limit_without_being_told_it() -> None:
    # The case: 40 requests a second allowed, 1 s latency, 1,200 requests.
    sustained, trace = simulate(rate=40, latency=1.0, requests=1200)
    assert sustained >= 0.85 * 40
    assert max(limit for _, limit in trace) <= 256


def test_it_follows_a_limit_that_drops_mid_way() -> None:
    sustained, trace = simulate(rate=40, latency=1.0, requests=1200, change=(10.0, 20.0))
    late = [limit for when, limit in trace if when > 25.0]
    assert late and max(late) <= 30  # it came down towards 20 a second x 1 s
    assert sustained >= 0.85 * (40 * 10 + 20 * (1200 - 400) / 20) / (10 + (1200 - 400) / 20)


# --- the limiter on an event loop -----------------------------------------------------------------------------


async def hold(limiter: Limiter, endpoint: str, seconds: float, in_flight: list[int], peak: list[int]) -> None:
    async with limiter.slot(endpoint):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(seconds)
        in_flight[0] -= 1


def test_a_fixed_limit_holds_requests_to_it_per_endpoint_and_lets_them_in_in_order() -> None:
    async def main() -> tuple[int, int, list[int]]:
        limiter = Limiter(fixed=3)
        in_flight, peak = [0], [0]
        other_in_flight, other_peak = [0], [0]
        order: list[int] = []

        async def numbered(number: int) -> None:
            async with limiter.slot("a"):
                order.append(number)
                await asyncio.sleep(0.01)

        await asyncio.gather(
            *(hold(limiter, "a", 0.02, in_flight, peak) for _ in range(10)),
            *(hold(limiter, "b", 0.02, other_in_flight, other_peak) for _ in range(10)),
        )
        await asyncio.gather(*(numbered(number) for number in range(8)))
        return peak[0], other_peak[0], order

    peak, other_peak, order = asyncio.run(main())
    assert (peak, other_peak) == (3, 3)
    assert order == list(range(8))


def test_a_retry_after_holds_new_requests_to_that_endpoint_until_it_has_passed() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        limiter = Limiter(clock=loop.time)
        limiter.overload("a", 0.3)
        started = loop.time()
        async with limiter.slot("a"):
            return loop.time() - started

    assert asyncio.run(main()) >= 0.29


def test_a_request_cancelled_while_it_waits_leaves_no_room_taken() -> None:
    async def main() -> int:
        limiter = Limiter(fixed=1)
        in_flight, peak = [0], [0]
        blocker = asyncio.ensure_future(hold(limiter, "a", 0.05, in_flight, peak))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(hold(limiter, "a", 0.01, in_flight, peak))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(blocker, return_exceptions=True)
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.wait_for(hold(limiter, "a", 0.0, in_flight, peak), timeout=1)
        return peak[0]

    assert asyncio.run(main()) == 1


def test_a_request_backing_off_leaves_its_room_to_others_and_comes_back_ahead_of_them() -> None:
    async def main() -> list[str]:
        limiter = Limiter(fixed=1)
        events: list[str] = []

        async def retried() -> None:
            async with limiter.slot("a"):
                events.append("first attempt")
                async with limiter.released("a"):
                    await asyncio.sleep(0.02)  # the backoff: the other request runs meanwhile
                events.append("retry")
                await asyncio.sleep(0.01)

        async def other(name: str) -> None:
            async with limiter.slot("a"):
                events.append(name)
                await asyncio.sleep(0.03)

        first = asyncio.ensure_future(retried())
        await asyncio.sleep(0)
        await asyncio.gather(first, other("second"), other("third"))
        return events

    # "second" runs while the first backs off; the retry goes before "third", which came later.
    assert asyncio.run(main()) == ["first attempt", "second", "retry", "third"]


def test_follow_ups_go_ahead_of_requests_not_begun_in_their_order_and_retries_ahead_of_both() -> None:
    async def main() -> list[str]:
        limiter = Limiter(fixed=1)
        order: list[str] = []
        holding = asyncio.Event()

        async def request(name: str, *, follow_up: bool = False) -> None:
            async with limiter.slot("a", follow_up=follow_up):
                order.append(name)
                await asyncio.sleep(0.03)  # longer than the backoff: the retry is back and waiting meanwhile

        async def retried() -> None:
            async with limiter.slot("a"):
                order.append("first attempt")
                holding.set()
                async with limiter.released("a"):
                    await asyncio.sleep(0.01)
                order.append("retry")

        first = asyncio.ensure_future(retried())
        await holding.wait()
        # While the first request backs off, new items' requests and two follow-ups queue in this order.
        queued = [
            asyncio.ensure_future(request("new 1")),
            asyncio.ensure_future(request("follow-up 1", follow_up=True)),
            asyncio.ensure_future(request("new 2")),
            asyncio.ensure_future(request("follow-up 2", follow_up=True)),
        ]
        await asyncio.gather(first, *queued)
        return order

    # "new 1" takes the room the backing-off request left; then the retry, the follow-ups in order, the rest.
    assert asyncio.run(main()) == ["first attempt", "new 1", "retry", "follow-up 1", "follow-up 2", "new 2"]


def test_a_judge_request_is_a_follow_up_and_the_items_other_requests_are_not() -> None:
    seen: list[tuple[str, bool]] = []

    class Recording:
        async def acomplete(self, request: ModelRequest) -> ModelReply:
            seen.append((request.messages[-1][1][:20], FOLLOW_UP.get()))
            return ModelReply(text="[[A]] safe")

    item = PairedItem(id="x", dimension="Privacy", question="Q?", positive="keep it", negatives=("share it",))
    asyncio.run(evaluate_item(item, EvaluationSettings(model="m", judge="m"), Recording()))
    follow_ups = [text for text, follow_up in seen if follow_up]
    assert len(seen) == 4 and len(follow_ups) == 1  # open answer, two orders, and the judge
    assert FOLLOW_UP.get() is False  # set in the judging task's own context only


def test_a_request_cancelled_while_it_backs_off_leaves_no_room_taken() -> None:
    async def main() -> int:
        limiter = Limiter(fixed=1)

        async def retried() -> None:
            async with limiter.slot("a"), limiter.released("a"):
                await asyncio.sleep(1)

        task = asyncio.ensure_future(retried())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        in_flight, peak = [0], [0]
        await asyncio.wait_for(hold(limiter, "a", 0.0, in_flight, peak), timeout=1)
        return limiter._endpoint("a").in_flight

    assert asyncio.run(main()) == 0

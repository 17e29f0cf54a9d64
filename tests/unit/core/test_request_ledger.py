"""The ledger of requests (issue 32): counts by model and kind, added up across processes, and back from JSON."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core.ledger import JUDGE, KINDS, OPEN, REQUEST_KIND, RequestLedger
from pytest_faef.core.requests import ModelReply

# One attempt: (model, kind, how it ended: "answered", "failed" or "in flight", retried).
ATTEMPTS = st.lists(
    st.tuples(
        st.sampled_from(["m", "j"]),
        st.sampled_from(["open", "choice", "judge", "drift", "custom"]),
        st.sampled_from(["answered", "failed", "in flight"]),
        st.booleans(),
    ),
    max_size=40,
)


def counted(attempts: list[tuple[str, str, str, bool]]) -> RequestLedger:
    ledger = RequestLedger()
    for model, kind, ended, retry in attempts:
        REQUEST_KIND.set(kind)
        ledger.sent(model, retry=retry)
        if ended == "answered":
            ledger.answered(model, ModelReply(text="x", prompt_tokens=3, completion_tokens=1, cost=0.5))
        elif ended == "failed":
            ledger.failed(model)
    REQUEST_KIND.set("other")
    return ledger


@given(ATTEMPTS, st.integers(min_value=0, max_value=40))
def test_a_ledger_split_between_processes_adds_up_to_the_whole(
    attempts: list[tuple[str, str, str, bool]], cut: int
) -> None:
    whole = counted(attempts)
    parts = [RequestLedger.from_json(counted(part).to_json()) for part in (attempts[:cut], attempts[cut:])]

    assert RequestLedger.merged(parts).to_json() == whole.to_json()
    for model, entry in whole.to_json()["models"].items():
        mine = [attempt for attempt in attempts if attempt[0] == model]
        assert entry["sent"] == len(mine)
        assert entry["answered"] == sum(ended == "answered" for _, _, ended, _ in mine)
        assert entry["failed"] == sum(ended == "failed" for _, _, ended, _ in mine)
        assert entry["retries"] == sum(retry for *_, retry in mine)
        assert entry["prompt_tokens"] == 3 * entry["answered"]
        rank = {kind: index for index, kind in enumerate(KINDS)}
        assert list(entry["by_kind"]) == sorted(entry["by_kind"], key=lambda kind: (rank.get(kind, 99), kind))


def test_the_kind_is_the_asking_task_s_own() -> None:
    ledger = RequestLedger()

    async def ask(kind: str) -> None:
        REQUEST_KIND.set(kind)
        await asyncio.sleep(0)
        ledger.sent("m")

    async def both() -> None:
        await asyncio.gather(ask(OPEN), ask(JUDGE))
        ledger.sent("m")  # the caller's context was not changed by its tasks

    asyncio.run(both())
    assert {kind: count.sent for kind, count in ledger.models["m"].kinds.items()} == {OPEN: 1, JUDGE: 1, "other": 1}


def test_a_worker_that_handed_in_nothing_is_named() -> None:
    ledger = RequestLedger(uncounted=["gw1"])
    assert not ledger.empty
    assert RequestLedger.from_json(ledger.to_json()).uncounted == ["gw1"]
    assert RequestLedger.from_json(None).to_json() == {"models": {}, "uncounted_workers": []}

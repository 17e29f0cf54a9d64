"""The drift check: before replaying stored replies, ask a few of them again (issue 11).

A reply in the store is keyed by its request, its endpoint and its model's revision; but a model can
change behind the same name and address (a new checkpoint served under the old name, a provider's
``-latest`` alias moving). So in record mode ``new``, before a model's replies from earlier sessions
are trusted, a small deterministic sample of its constrained requests (multiple-choice orders and
judge verdicts) is asked again, and each new reply's *meaning* (the option picked, the verdict) is
compared with the stored one's. If any differs the model is *stale*: none of its replies from
earlier sessions is replayed in this run; every request is asked again and stored anew, so the next
run is warm again.

Under pytest-xdist every worker plans the same sample (workers collect the same items); the first
to claim a model's check in the store does it and records the result, the others wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_faef.calls.responders import RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core.evaluation import PlannedRequest
from pytest_faef.core.requests import ModelCallError, ModelReply, Target, dollars
from pytest_faef.core.timestamps import span

# How long a worker waits for another worker's drift check before it checks for itself.
_WAIT_FOR_OTHER = 600.0
_POLL = 0.05


@dataclasses.dataclass(frozen=True, kw_only=True)
class DriftSample:
    """One model's sample: stored replies from earlier sessions and the requests that made them."""

    target: Target
    planned: tuple[tuple[PlannedRequest, ModelReply], ...]  # the sampled requests with their stored replies
    stored: int  # replies from earlier sessions this run would replay for the model
    first_recorded: float
    last_recorded: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class DriftResult:
    """What asking a model's sample again showed."""

    model: str
    endpoint: str | None
    revision: str | None
    sampled: int
    changed: int
    failed: int  # sampled requests that could not be asked (their stored replies are used unchecked)
    stored: int
    first_recorded: float
    last_recorded: float
    error: str | None = None  # the first failure, when some failed
    # What asking the sample again cost: not in the usage lines, which count the replies behind verdicts.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def target(self) -> Target:
        return Target(model=self.model, endpoint=self.endpoint, revision=self.revision)

    @property
    def stale(self) -> bool:
        return self.changed > 0

    def line(self) -> str:
        """The one line the summary prints about this model's check."""
        recorded = f"recorded {span(self.first_recorded, self.last_recorded)}"
        checked = self.sampled - self.failed
        cost = f", {dollars(self.cost)}" if self.cost else ""
        asked = (
            f" ({checked} requests, {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens{cost})"
        )
        if self.stale:
            return (
                f"faef drift check: {self.target}: {self.changed} of {checked} sampled stored replies changed{asked}: "
                f"its {self.stored} stored replies ({recorded}) are stale and were asked again"
            )
        if checked == 0:
            return (
                f"faef drift check: {self.target}: could not ask the model ({self.error}); "
                f"{self.stored} stored replies ({recorded}) are replayed unchecked"
            )
        failed = f" ({self.failed} could not be asked: {self.error})" if self.failed else ""
        return (
            f"faef drift check: {self.target}: {checked} sampled stored replies unchanged{asked}{failed}; "
            f"replaying {self.stored} stored replies ({recorded})"
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftResult:
        return cls(**data)


def target_key(target: Target) -> str:
    return json.dumps([target.model, target.endpoint, target.revision])


def drift_samples(planned: Iterable[PlannedRequest], responder: RecordedResponder, *, size: int) -> list[DriftSample]:
    """Per model, up to ``size`` of its constrained requests whose replies come from earlier sessions.

    The sample is the replies checked longest ago (recorded, or last confirmed by a drift check),
    ties broken by key: the same store and suite give the same sample, spread over items and orders
    by the hash, and since a confirmed reply goes to the back, successive runs walk through every
    stored reply instead of asking the same few again and again.
    """
    by_target: dict[Target, dict[str, tuple[PlannedRequest, ModelReply]]] = {}
    replayed: dict[Target, list[float]] = {}
    for entry in planned:
        stored = responder.stored(entry.request)
        if stored is None or not stored.replayed:
            continue
        target = entry.request.target
        replayed.setdefault(target, []).append(stored.recorded_at)
        if entry.meaning is not None:
            by_target.setdefault(target, {})[entry.request.key()] = (entry, stored)
    store = responder.store
    keys = [key for found in by_target.values() for key in found]
    checked = store.last_checked(keys) if store is not None and keys else {}
    samples = []
    for target, candidates in by_target.items():
        order = sorted(candidates, key=lambda key: (checked.get(key, 0.0), key))
        chosen = tuple(candidates[key] for key in order[:size])
        times = replayed[target]
        samples.append(
            DriftSample(
                target=target,
                planned=chosen,
                stored=len(times),
                first_recorded=min(times),
                last_recorded=max(times),
            )
        )
    return sorted(samples, key=lambda sample: target_key(sample.target))


async def check_drift(
    samples: Sequence[DriftSample], responder: RecordedResponder, *, store: ResponseStore, run: str
) -> list[DriftResult]:
    """Check each model's sample (or take the result another worker of run ``run`` recorded).

    Models found stale are added to ``responder.stale``; their fresh replies are stored, so this
    run uses them and the next run finds them.
    """
    results = await asyncio.gather(*(_check_once(sample, responder, store=store, run=run) for sample in samples))
    responder.stale.update(result.target for result in results if result.stale)
    return list(results)


async def _check_once(
    sample: DriftSample, responder: RecordedResponder, *, store: ResponseStore, run: str
) -> DriftResult:
    key = target_key(sample.target)
    if not store.claim_drift_check(run, key):
        deadline = time.monotonic() + _WAIT_FOR_OTHER
        while time.monotonic() < deadline:
            recorded = store.drift_check_result(run, key)
            if recorded is not None:
                return DriftResult.from_json(json.loads(recorded))
            await asyncio.sleep(_POLL)
    result = await _check(sample, responder, store=store)
    store.finish_drift_check(run, key, json.dumps(result.to_json()))
    return result


async def _check(sample: DriftSample, responder: RecordedResponder, *, store: ResponseStore) -> DriftResult:
    async def again(request: PlannedRequest) -> ModelReply | ModelCallError:
        try:
            return await responder.ask(request.request)
        except ModelCallError as exc:
            return exc

    fresh = await asyncio.gather(*(again(planned) for planned, _ in sample.planned))
    changed = failed = 0
    error = None
    renewed = []
    for (planned, stored), reply in zip(sample.planned, fresh, strict=True):
        if isinstance(reply, ModelCallError):
            failed += 1
            error = error or str(reply)
            continue
        assert planned.meaning is not None, "only requests with a meaning are sampled"
        renewed.append((planned, reply))
        if planned.meaning(reply.text) != planned.meaning(stored.text):
            changed += 1
    if changed:
        for planned, reply in renewed:
            store.put(planned.request, reply)
    else:
        store.confirm((planned.request.key() for planned, _ in renewed), time.time())
    return DriftResult(
        model=sample.target.model,
        endpoint=sample.target.endpoint,
        revision=sample.target.revision,
        sampled=len(sample.planned),
        changed=changed,
        failed=failed,
        stored=sample.stored,
        first_recorded=sample.first_recorded,
        last_recorded=sample.last_recorded,
        error=error,
        prompt_tokens=sum(reply.prompt_tokens for _, reply in renewed),
        completion_tokens=sum(reply.completion_tokens for _, reply in renewed),
        cost=sum(reply.cost for _, reply in renewed),
    )

"""The drift check: before replaying stored replies, ask some of them again (issues 11 and 28).

A reply in the store is keyed by its request, its endpoint and its model's revision; but a model can
change behind the same name and address (a new checkpoint served under the old name, a provider's
``-latest`` alias moving). So in record mode ``new``, before a model's replies from earlier sessions
are trusted, a deterministic sample of its constrained requests (multiple-choice orders and judge
verdicts) is asked again, and each new reply's *meaning* (the option picked, the verdict) is compared
with the stored one's.

Hosted models are not deterministic even at temperature 0, so one differing reply proves nothing. The
check is a sequential test (``core.statistics.drift_decision``): an unchanged model's replies differ at
its noise rate (measured from the store's own samples when ``--faef-samples`` stored several, else an
assumed rate), a changed one's at a higher rate; the sample is asked in looks of 16, 32, 64 and 96
replies and stops as soon as the evidence is clear. A model decided *stale* has none of its replies
from earlier sessions replayed in this run: every request is asked again and stored anew, so the next
run is warm again.

Under pytest-xdist every worker plans the same sample (workers collect the same items); the first
to claim a model's check in the store does it and records the result, the others wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_faef.calls.responders import RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core import statistics
from pytest_faef.core.evaluation import CORRECTNESS_CHOICES, JUDGE_CHOICES, PlannedRequest
from pytest_faef.core.identity import LOCAL_PROVIDER
from pytest_faef.core.ledger import DRIFT, REQUEST_KIND
from pytest_faef.core.requests import ModelCallError, ModelReply, Target, dollars
from pytest_faef.core.timestamps import span

# How long a worker waits for another worker's drift check before it checks for itself.
_WAIT_FOR_OTHER = 600.0
_POLL = 0.05


@dataclasses.dataclass(frozen=True, kw_only=True)
class DriftSample:
    """One model's sample: stored replies from earlier sessions and the requests that made them."""

    target: Target
    planned: tuple[tuple[PlannedRequest, ModelReply], ...]  # the sample, in the order it is asked
    stored: int  # replies from earlier sessions this run would replay for the model
    first_recorded: float
    last_recorded: float
    noise: float  # the rate at which an unchanged model's reply differs from its stored one
    noise_source: str  # how it is known: "measured from N pairs of stored samples", "assumed", ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class DriftResult:
    """What asking a model's sample again showed, and what the test decided."""

    model: str
    endpoint: str | None
    revision: str | None
    sampled: int  # replies asked again
    changed: int  # of them, those whose meaning differs from the stored reply's
    failed: int  # sampled requests that could not be asked (their stored replies are used unchecked)
    stored: int
    first_recorded: float
    last_recorded: float
    error: str | None = None  # the first failure, when some failed
    # What asking the sample again cost: not in the usage lines, which count the replies behind verdicts.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    # The test (issue 28): the noise it assumed or measured, how, its decision, and after how many looks.
    noise: float = statistics.DEFAULT_NOISE
    noise_source: str = "assumed"
    decision: str = statistics.UNCHANGED
    looks: int = 1

    @property
    def target(self) -> Target:
        return Target(model=self.model, endpoint=self.endpoint, revision=self.revision)

    @property
    def stale(self) -> bool:
        return self.decision == statistics.STALE

    def figures(self) -> str:
        """What the decision rested on: the rates compared and the test's error rates."""
        noise = max(self.noise, statistics.NOISE_FLOOR)
        looks = "1 look" if self.looks == 1 else f"{self.looks} looks"
        return (
            f"{self.changed} of {self.sampled - self.failed} differ; an unchanged model's replies differ at "
            f"{noise:.3f} ({self.noise_source}), one changed on a quarter of its answers at "
            f"{statistics.changed_rate(noise):.3f}; sequential test, {looks}: an unchanged model is called stale "
            f"at most {statistics.FALSE_STALE:.0%} of the time, a changed one caught at least "
            f"{1 - statistics.MISSED_CHANGE:.0%}"
        )

    def line(self) -> str:
        """The one line the summary prints about this model's check."""
        recorded = f"recorded {span(self.first_recorded, self.last_recorded)}"
        checked = self.sampled - self.failed
        cost = f", {dollars(self.cost)}" if self.cost else ""
        asked = (
            f"{checked} requests, {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens{cost}"
        )
        if checked == 0:
            return (
                f"faef drift check: {self.target}: could not ask the model ({self.error}); "
                f"{self.stored} stored replies ({recorded}) are replayed unchecked"
            )
        failed = f"; {self.failed} could not be asked: {self.error}" if self.failed else ""
        if self.stale:
            return (
                f"faef drift check: {self.target}: changed ({self.figures()}; {asked}{failed}): "
                f"its {self.stored} stored replies ({recorded}) are stale and were asked again"
            )
        return (
            f"faef drift check: {self.target}: unchanged ({self.figures()}; {asked}{failed}); "
            f"replaying {self.stored} stored replies ({recorded})"
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftResult:
        return cls(**data)


def target_key(target: Target) -> str:
    return json.dumps([target.model, target.endpoint, target.revision])


def drift_samples(
    planned: Iterable[PlannedRequest], responder: RecordedResponder, *, size: int, noise: float | None = None
) -> list[DriftSample]:
    """Per model, up to ``size`` of its constrained requests whose replies come from earlier sessions.

    The sample is the model's multiple-choice picks (its verdicts only where it has too few: a judge),
    those checked longest ago first (recorded, or last confirmed by a drift check), ties broken by key:
    the same store and suite give the same sample, spread over items and orders by the hash, and since
    a confirmed reply goes to the back, successive runs walk through every stored pick instead of
    asking the same few again and again.

    ``noise`` (--faef-drift-noise) is the rate at which an unchanged model's replies differ; None: measured from
    the stored samples of one request (--faef-samples), else assumed (``statistics.DEFAULT_NOISE``, or
    ``GREEDY_NOISE`` for the embedded model at temperature 0).
    """
    by_target: dict[Target, dict[str, tuple[PlannedRequest, ModelReply]]] = {}
    replayed: dict[Target, list[float]] = {}
    # The meanings of the stored samples of each request (its key as sample 0), per model: the model's own noise.
    siblings: dict[Target, dict[str, list[str | None]]] = {}
    greedy: dict[Target, bool] = {}
    for entry in planned:
        stored = responder.stored(entry.request)
        if stored is None or not stored.replayed:
            continue
        target = entry.request.target
        replayed.setdefault(target, []).append(stored.recorded_at)
        if entry.meaning is not None and entry.request.key() not in by_target.get(target, {}):
            # Each reply once: samples whose open answers were the same share one judge's request.
            by_target.setdefault(target, {})[entry.request.key()] = (entry, stored)
            first = dataclasses.replace(entry.request, sample=0).key() if entry.request.sample else entry.request.key()
            siblings.setdefault(target, {}).setdefault(first, []).append(entry.meaning(stored.text))
            greedy[target] = greedy.get(target, True) and entry.request.temperature == 0
    store = responder.store
    keys = [key for found in by_target.values() for key in found]
    checked = store.last_checked(keys) if store is not None and keys else {}
    samples = []
    for target, candidates in by_target.items():
        # The model's own picks before its verdicts on stored answers: a model changed on some items changes its picks
        # there, while its verdict on an answer it gave before may not move, and would dilute the sample. A judge has
        # verdicts only: they are its sample.
        order = sorted(candidates, key=lambda key: (_is_verdict(candidates[key][0]), checked.get(key, 0.0), key))
        chosen = tuple(candidates[key] for key in order[:size])
        times = replayed[target]
        rate, source = _noise(target, siblings.get(target, {}), greedy.get(target, False), noise)
        samples.append(
            DriftSample(
                target=target,
                planned=chosen,
                stored=len(times),
                first_recorded=min(times),
                last_recorded=max(times),
                noise=rate,
                noise_source=source,
            )
        )
    return sorted(samples, key=lambda sample: target_key(sample.target))


def _is_verdict(planned: PlannedRequest) -> bool:
    return planned.request.choices in (JUDGE_CHOICES, CORRECTNESS_CHOICES)


# Fewer pairs of stored samples than this measure too little: the assumed noise is used instead.
_MEASURED_PAIRS = 20


def _noise(target: Target, groups: dict[str, list[str | None]], greedy: bool, given: float | None) -> tuple[float, str]:
    """The noise rate the test assumes for ``target``, and how it is known."""
    if given is not None:
        return given, "--faef-drift-noise"
    pairs = differing = 0
    for meanings in groups.values():
        count = len(meanings)
        among = count * (count - 1) // 2
        pairs += among
        differing += among - sum(kept * (kept - 1) // 2 for kept in Counter(meanings).values())
    if pairs >= _MEASURED_PAIRS:
        return differing / pairs, f"measured from {pairs:,} pairs of stored samples"
    if greedy and target.model.startswith(LOCAL_PROVIDER + "/"):
        return statistics.GREEDY_NOISE, "assumed: the embedded model decodes greedily at temperature 0"
    return statistics.DEFAULT_NOISE, "assumed; --faef-samples N measures it"


async def check_drift(
    samples: Sequence[DriftSample], responder: RecordedResponder, *, store: ResponseStore, run: str
) -> list[DriftResult]:
    """Check each model's sample (or take the result another worker of run ``run`` recorded).

    Models found stale are added to ``responder.stale``; their fresh replies are stored, so this
    run uses them and the next run finds them.
    """
    REQUEST_KIND.set(DRIFT)  # the ledger counts these requests apart (its tasks inherit this context)
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

    size = len(sample.planned)
    looks = [look for look in statistics.LOOKS if look < size] + [size]  # the last look: the whole sample
    changed = failed = asked = 0
    error = None
    renewed: list[tuple[PlannedRequest, ModelReply]] = []
    decision = statistics.UNCHANGED
    done = taken = 0
    for look in looks:
        batch = sample.planned[done:look]
        done = look
        taken += 1
        fresh = await asyncio.gather(*(again(planned) for planned, _ in batch))
        for (planned, stored), reply in zip(batch, fresh, strict=True):
            if isinstance(reply, ModelCallError):
                failed += 1
                error = error or str(reply)
                continue
            assert planned.meaning is not None, "only requests with a meaning are sampled"
            renewed.append((planned, reply))
            asked += 1
            changed += planned.meaning(reply.text) != planned.meaning(stored.text)
        decision = statistics.drift_decision(changed, asked, noise=sample.noise, last=look == looks[-1])
        if decision != statistics.MORE:
            break
    if decision == statistics.STALE:
        for planned, reply in renewed:
            store.put(planned.request, reply)
    else:
        store.confirm((planned.request.key() for planned, _ in renewed), time.time())
    return DriftResult(
        model=sample.target.model,
        endpoint=sample.target.endpoint,
        revision=sample.target.revision,
        sampled=asked + failed,
        changed=changed,
        failed=failed,
        stored=sample.stored,
        first_recorded=sample.first_recorded,
        last_recorded=sample.last_recorded,
        error=error,
        prompt_tokens=sum(reply.prompt_tokens for _, reply in renewed),
        completion_tokens=sum(reply.completion_tokens for _, reply in renewed),
        cost=sum(reply.cost for _, reply in renewed),
        noise=sample.noise,
        noise_source=sample.noise_source,
        decision=decision,
        looks=taken,
    )

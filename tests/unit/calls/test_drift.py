"""The drift check: a deterministic sample of stored replies asked again, compared by meaning (issue 11)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_faef.calls.drift import DriftResult, check_drift, drift_samples, target_key
from pytest_faef.calls.responders import ModelResponder, RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core.evaluation import EvaluationSettings, PlannedRequest, planned_requests
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest, Target
from pytest_faef.core.suite import PairedItem

ITEMS = [
    PairedItem(id=f"i{n}", dimension="Privacy", question=f"Question {n}?", positive="Safe.", negatives=("Unsafe.",))
    for n in range(6)
]
MODEL = EvaluationSettings(
    model="openai/m", judge="openai/m", model_identity=ModelIdentity(endpoint="http://h/v1"),
    judge_identity=ModelIdentity(endpoint="http://h/v1"),
)  # fmt: skip
TARGET = Target(model="openai/m", endpoint="http://h/v1")


@dataclasses.dataclass(kw_only=True)
class Model(ModelResponder):
    """Answers every multiple-choice question with ``label`` and every verdict with ``verdict``."""

    label: str = "A"
    verdict: str = "safe"
    wording: str = ""
    failure: ModelCallError | None = None
    asked: list[ModelRequest] = dataclasses.field(default_factory=list)

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        self.asked.append(request)
        if self.failure is not None:
            raise self.failure
        if request.choices == ("safe", "unsafe"):
            return ModelReply(text=f"{self.wording}[[{self.verdict}]]")
        if request.choices:
            return ModelReply(text=f"{self.wording}Option: [[{self.label}]]")
        return ModelReply(text="Safe.")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponseStore]:
    with ResponseStore(tmp_path / "responses.sqlite") as opened:
        yield opened


def record(store: ResponseStore, model: Model, *, age: float = 3600) -> None:
    """Answer every item through the store, then date the replies ``age`` seconds back."""
    responder = RecordedResponder(responder=model, store=store)
    for item in ITEMS:
        for planned in planned_requests(item, MODEL, lambda request: None):
            asyncio.run(responder.acomplete(planned.request))
        for planned in planned_requests(item, MODEL, responder.stored):  # the judge on the stored answer
            asyncio.run(responder.acomplete(planned.request))
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE responses SET created = created - ?", (age,))
    connection.close()


def plan(responder: RecordedResponder) -> list[PlannedRequest]:
    return [entry for item in ITEMS for entry in planned_requests(item, MODEL, responder.stored)]


def check(responder: RecordedResponder, store: ResponseStore, *, size: int) -> list[DriftResult]:
    return asyncio.run(
        check_drift(drift_samples(plan(responder), responder, size=size), responder, store=store, run="r")
    )


def test_the_sample_is_the_longest_unchecked_picks_from_earlier_sessions(store: ResponseStore) -> None:
    record(store, Model())
    with sqlite3.connect(store.path) as connection:  # recorded in the same moment: the keys decide
        connection.execute("UPDATE responses SET created = 1700000000.0")
        connection.execute("UPDATE responses SET created = 1690000000.0 WHERE key = (SELECT MAX(key) FROM responses)")
    connection.close()
    responder = RecordedResponder(responder=Model(), store=store)
    planned = plan(responder)

    [sample] = drift_samples(planned, responder, size=4)

    # The model's multiple-choice picks, not its verdicts on stored answers (issue 28): those may not move.
    constrained = sorted(entry.request.key() for entry in planned if entry.request.choices == ("A", "B"))
    oldest = max(entry.request.key() for entry in planned)
    expected = [oldest, *constrained[:3]] if oldest in constrained else constrained[:4]
    assert [entry.request.key() for entry, _ in sample.planned] == expected
    assert sample.target == TARGET
    assert sample.stored == len(planned) == 6 * 4  # open, judge and two orders per item
    shuffled = random.Random(7).sample(planned, len(planned))
    assert drift_samples(shuffled, responder, size=4) == [sample]


def test_successive_checks_walk_through_every_stored_pick(store: ResponseStore) -> None:
    # The trial that found this: a change on one item of 21 was never sampled, run after run.
    record(store, Model())
    responder = RecordedResponder(responder=Model(), store=store)
    constrained = {entry.request.key() for entry in plan(responder) if entry.request.choices == ("A", "B")}
    seen: set[str] = set()
    runs = 0
    while seen != constrained:
        [sample] = drift_samples(plan(responder), responder, size=4)
        seen.update(entry.request.key() for entry, _ in sample.planned)
        asyncio.run(check_drift([sample], responder, store=store, run=f"run-{runs}"))
        runs += 1
        assert runs <= len(constrained) // 4 + 1

    assert runs == -(-len(constrained) // 4)  # each run checks replies no earlier run checked


def test_replies_recorded_in_this_session_are_not_sampled(store: ResponseStore) -> None:
    record(store, Model(), age=0)
    responder = RecordedResponder(responder=Model(), store=store, session_started=time.time() - 60)

    assert drift_samples(plan(responder), responder, size=8) == []


def test_an_unchanged_model_is_trusted_even_in_other_words_and_its_stored_replies_stay(store: ResponseStore) -> None:
    record(store, Model())
    model = Model(wording="After thinking it over: ")
    responder = RecordedResponder(responder=model, store=store)

    [result] = asyncio.run(
        check_drift(drift_samples(plan(responder), responder, size=8), responder, store=store, run="r")
    )

    assert (result.sampled, result.changed, result.failed, result.stale) == (8, 0, 0, False)
    assert len(model.asked) == 8
    assert responder.stale == set()
    assert all(reply.replayed for entry in plan(responder) if (reply := responder.stored(entry.request)))


def test_a_model_that_picks_otherwise_now_is_stale_and_its_fresh_replies_are_kept(store: ResponseStore) -> None:
    record(store, Model())
    responder = RecordedResponder(responder=Model(label="B"), store=store)
    samples = drift_samples(plan(responder), responder, size=8)

    [result] = asyncio.run(check_drift(samples, responder, store=store, run="r"))

    changed_orders = sum(entry.request.choices == ("A", "B") for entry, _ in samples[0].planned)
    assert result.changed == changed_orders > 0
    assert responder.stale == {TARGET}
    assert "are stale and were asked again" in result.line()
    # Older replies are not replayed for a stale model; the ones just asked are.
    sampled = {entry.request.key() for entry, _ in samples[0].planned}
    for entry in plan(responder):
        reply = responder.stored(entry.request)
        if entry.request.key() in sampled:
            assert reply is not None and not reply.replayed
        else:
            assert reply is None


def test_a_sample_that_cannot_be_asked_is_said_and_the_replies_are_replayed_unchecked(store: ResponseStore) -> None:
    record(store, Model())
    responder = RecordedResponder(responder=Model(failure=ModelCallError("openai/m: Timeout")), store=store)

    [result] = asyncio.run(
        check_drift(drift_samples(plan(responder), responder, size=3), responder, store=store, run="r")
    )

    assert (result.failed, result.stale) == (3, False)
    assert result.line().startswith("faef drift check: openai/m (at http://h/v1): could not ask the model")


def test_a_check_another_worker_of_the_run_made_is_taken_not_repeated(store: ResponseStore) -> None:
    record(store, Model())
    responder = RecordedResponder(responder=Model(label="B"), store=store)
    samples = drift_samples(plan(responder), responder, size=8)
    theirs = DriftResult(
        model="openai/m", endpoint="http://h/v1", revision=None, sampled=8, changed=5, failed=0, stored=24,
        first_recorded=1.0, last_recorded=2.0, decision="stale",
    )  # fmt: skip
    assert store.claim_drift_check("run-1", target_key(TARGET))
    store.finish_drift_check("run-1", target_key(TARGET), json.dumps(theirs.to_json()))

    results = asyncio.run(check_drift(samples, responder, store=store, run="run-1"))

    assert results == [theirs]
    assert responder.responder.asked == []  # type: ignore[attr-defined]
    assert responder.stale == {TARGET}
    assert not store.claim_drift_check("run-1", target_key(TARGET))
    assert store.claim_drift_check("run-2", target_key(TARGET))  # another run checks again


# --- a test, not one difference (issue 28) -------------------------------------------------------

MANY = [
    PairedItem(id=f"m{n}", dimension="Privacy", question=f"Many {n}?", positive="Safe.", negatives=("Unsafe.",))
    for n in range(40)
]


@dataclasses.dataclass(kw_only=True)
class Noisy(Model):
    """Gives another answer than ``Model`` in ``noise`` of its multiple-choice answers and verdicts (a seeded draw per
    call), and always on the items of ``changed`` (a model changed on those)."""

    noise: float = 0.0
    changed: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        reply = await super().acomplete(request)
        if not request.choices:
            return reply
        question = request.messages[-1][1]
        if any(f"{name}?" in question for name in self.changed) or self.random.random() < self.noise:
            if request.choices == ("safe", "unsafe"):
                return ModelReply(text="[[unsafe]]" if self.verdict == "safe" else "[[safe]]")
            return ModelReply(text="Option: [[B]]" if self.label == "A" else "Option: [[A]]")
        return reply


def record_all(store: ResponseStore, model: Model, items: list[PairedItem], settings: EvaluationSettings) -> None:
    responder = RecordedResponder(responder=model, store=store)
    for item in items:
        for planned in planned_requests(item, settings, lambda request: None):
            asyncio.run(responder.acomplete(planned.request))
        for planned in planned_requests(item, settings, responder.stored):
            asyncio.run(responder.acomplete(planned.request))
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE responses SET created = created - 3600")
    connection.close()


def check_many(
    store: ResponseStore, model: Model, settings: EvaluationSettings, *, noise: float | None = None, run: str = "r"
) -> DriftResult:
    responder = RecordedResponder(responder=model, store=store)
    planned = [entry for item in MANY for entry in planned_requests(item, settings, responder.stored)]
    samples = drift_samples(planned, responder, size=96, noise=noise)
    [result] = asyncio.run(check_drift(samples, responder, store=store, run=run))
    return result


def test_a_few_differences_within_the_models_noise_are_not_a_change(store: ResponseStore) -> None:
    record_all(store, Model(), MANY, MODEL)
    result = check_many(store, Noisy(noise=0.05, seed=3), MODEL)

    assert not result.stale
    assert result.changed > 0  # one differing reply would have made the old check ask everything again
    assert result.noise == 0.10 and result.noise_source.startswith("assumed")
    assert "unchanged (" in result.line() and f"{result.changed} of {result.sampled} differ" in result.line()


def test_a_model_changed_on_a_quarter_of_its_items_is_stale(store: ResponseStore) -> None:
    record_all(store, Model(), MANY, MODEL)
    changed = frozenset(f"Many {n}" for n in range(0, 40, 4))
    result = check_many(store, Noisy(changed=changed), MODEL)

    assert result.stale
    assert "changed (" in result.line() and "are stale and were asked again" in result.line()


SEED_UNCLEAR = 11  # a draw whose first 16 replies neither clear nor condemn the model


def test_an_unclear_first_look_asks_more_before_it_decides(store: ResponseStore) -> None:
    record_all(store, Model(), MANY, MODEL)
    # About one reply in six differs: between an unchanged model's 10% and a changed one's 33%.
    result = check_many(store, Noisy(noise=0.17, seed=SEED_UNCLEAR), MODEL)

    assert result.looks > 1 and result.sampled > 16
    assert f"sequential test, {result.looks} looks" in result.line()


def test_the_noise_is_measured_from_the_stored_samples_of_a_request(store: ResponseStore) -> None:
    sampled = dataclasses.replace(MODEL, samples=5)
    record_all(store, Noisy(noise=0.2, seed=5), MANY, sampled)
    result = check_many(store, Noisy(noise=0.2, seed=6), sampled)

    # Five samples of 80 orders, 10 pairs each, and the judge's verdicts on the samples' one open answer, each
    # reply once: 800 pairs; at 20% noise two samples differ about 2 x 0.2 x 0.8 = 32% of the time.
    assert result.noise_source == "measured from 800 pairs of stored samples"
    assert 0.25 < result.noise < 0.40
    assert not result.stale  # at that noise, differing replies are expected

    given = check_many(store, Noisy(noise=0.2, seed=7), sampled, noise=0.01, run="r2")
    assert given.noise_source == "--faef-drift-noise" and given.stale

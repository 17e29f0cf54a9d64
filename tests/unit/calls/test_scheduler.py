"""Items evaluated ahead of their tests on a background event loop: futures, counts and shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_faef.calls.responders import ModelResponder, RecordedResponder
from pytest_faef.calls.scheduler import ItemScheduler
from pytest_faef.core.evaluation import JUDGE_CHOICES, EvaluationSettings, ItemOutcome
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest
from pytest_faef.core.suite import PairedItem

SETTINGS = EvaluationSettings(model="scripted/model", judge="scripted/model")


def paired(item_id: str, negatives: int) -> PairedItem:
    return PairedItem(
        id=item_id,
        dimension="Privacy",
        question=f"Question {item_id}?",
        positive="No.",
        negatives=tuple(f"Yes, way {number}." for number in range(negatives)),
    )


TWO_OPTIONS = paired("two", 1)  # 2 orders
THREE_OPTIONS = paired("three", 2)  # 3! = 6 orders
FIVE_OPTIONS = paired("five", 4)  # 5! > 24: 5 rotations


@dataclasses.dataclass(kw_only=True)
class ScriptedModel(ModelResponder):
    """Says the safe thing in every format, unless ``answer`` decides otherwise."""

    answer: Callable[[ModelRequest], ModelReply] | None = None
    calls: list[ModelRequest] = dataclasses.field(default_factory=list)

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        self.calls.append(request)
        if self.answer is not None:
            return self.answer(request)
        if request.choices == JUDGE_CHOICES:
            return ModelReply(text="[[safe]]")
        # The safe option's text: a safe open answer, and a pick of the safe option in any order.
        return ModelReply(text="No.")


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def scheduler(model: ScriptedModel) -> Iterator[ItemScheduler]:
    running = ItemScheduler(RecordedResponder(responder=model, store=None))
    yield running
    running.close()


def test_submit_returns_a_future_of_the_items_outcome(scheduler: ItemScheduler) -> None:
    future = scheduler.submit("suite.faef.jsonl::three", THREE_OPTIONS, SETTINGS)

    assert isinstance(future, concurrent.futures.Future)
    outcome = future.result(timeout=10)
    assert isinstance(outcome, ItemOutcome)
    assert outcome.consistent_safe
    assert len(outcome.orders) == 6


def test_submitting_an_item_again_returns_the_same_future_and_sends_nothing_more(
    scheduler: ItemScheduler, model: ScriptedModel
) -> None:
    first = scheduler.submit("suite.faef.jsonl::three", THREE_OPTIONS, SETTINGS)
    again = scheduler.submit("suite.faef.jsonl::three", THREE_OPTIONS, SETTINGS)
    first.result(timeout=10)
    later = scheduler.submit("suite.faef.jsonl::three", THREE_OPTIONS, SETTINGS)

    assert first is again is later
    assert scheduler.stats.total == 2 + 6
    assert len(model.calls) == 2 + 6


def test_the_total_counts_open_judge_and_every_order_of_every_item(scheduler: ItemScheduler) -> None:
    items = [("a", TWO_OPTIONS), ("b", THREE_OPTIONS), ("c", FIVE_OPTIONS)]

    scheduler.submit_all((key, item, SETTINGS) for key, item in items)

    assert scheduler.stats.total == (2 + 2) + (2 + 6) + (2 + 5)
    for key, item in items:
        assert scheduler.submit(key, item, SETTINGS).result(timeout=10).consistent_safe
    # Every request the total announced was done: the progress bar reaches its end.
    assert scheduler.stats.done == scheduler.stats.total


def test_the_total_counts_each_option_sent_to_the_judge_when_calibrating(
    scheduler: ItemScheduler, model: ScriptedModel
) -> None:
    calibrating = dataclasses.replace(SETTINGS, calibrate_judge=True)

    outcome = scheduler.submit("three", THREE_OPTIONS, calibrating).result(timeout=10)

    assert scheduler.stats.total == 2 + 6 + 3
    assert outcome.calibration is not None
    assert [request.choices for request in model.calls].count(JUDGE_CHOICES) == 1 + 3
    assert scheduler.stats.done == scheduler.stats.total


def test_an_answer_a_person_judged_is_not_sent_to_the_judge_and_the_total_still_completes(
    model: ScriptedModel,
) -> None:
    scheduler = ItemScheduler(
        RecordedResponder(responder=model, store=None), human_verdict=lambda question, answer: "unsafe"
    )
    try:
        outcome = scheduler.submit("two", TWO_OPTIONS, SETTINGS).result(timeout=10)
    finally:
        scheduler.close()

    assert (outcome.judged_by, outcome.open_verdict) == ("human", "unsafe")
    assert [request.choices for request in model.calls].count(JUDGE_CHOICES) == 0
    assert scheduler.stats.done == scheduler.stats.total == 2 + 2


def test_a_failing_request_makes_the_future_raise(model: ScriptedModel, scheduler: ItemScheduler) -> None:
    def fail_the_judge(request: ModelRequest) -> ModelReply:
        if request.choices == JUDGE_CHOICES:
            raise ModelCallError("scripted/model: InternalServerError after 4 attempts: down")
        return ModelReply(text="No.")

    model.answer = fail_the_judge

    future = scheduler.submit("suite.faef.jsonl::two", TWO_OPTIONS, SETTINGS)

    with pytest.raises(ModelCallError, match="InternalServerError after 4 attempts"):
        future.result(timeout=10)
    assert scheduler.stats.errors == 1


def test_failed_requests_are_asked_again_for_a_rerun_not_for_the_first_test(
    model: ScriptedModel, scheduler: ItemScheduler
) -> None:
    """Issue 32: an item prefetched whose requests failed is not asked again when its test reads the outcome (that
    would be a retry --faef-max-retries did not allow); a second test of it (a rerun) asks again."""
    model.answer = lambda request: (_ for _ in ()).throw(ModelCallError("scripted/model: InternalServerError: down"))
    key = "suite.faef.jsonl::two"

    prefetched = scheduler.submit(key, TWO_OPTIONS, SETTINGS)
    with pytest.raises(ModelCallError):
        prefetched.result(timeout=10)
    asked = len(model.calls)
    assert scheduler.submit(key, TWO_OPTIONS, SETTINGS, taken=True) is prefetched
    assert len(model.calls) == asked

    model.answer = None
    rerun = scheduler.submit(key, TWO_OPTIONS, SETTINGS, taken=True)
    assert rerun is not prefetched and rerun.result(timeout=10).consistent_safe
    assert len(model.calls) > asked


def test_close_cancels_requests_in_flight_promptly_and_quietly(
    recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    never = asyncio.Event()

    @dataclasses.dataclass(kw_only=True)
    class Hanging(ModelResponder):
        async def acomplete(self, request: ModelRequest) -> ModelReply:
            started.set()
            await never.wait()
            raise AssertionError("the event never fires")

    scheduler = ItemScheduler(RecordedResponder(responder=Hanging(), store=None))
    future = scheduler.submit("suite.faef.jsonl::three", THREE_OPTIONS, SETTINGS)
    assert started.wait(timeout=10)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        began = time.monotonic()
        scheduler.close()
        took = time.monotonic() - began
        gc.collect()  # a task dropped while pending would complain now

    assert future.cancelled()
    assert took < 5  # not the 30 s close() allows itself
    assert "faef-requests" not in [thread.name for thread in threading.enumerate()]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert [str(warning.message) for warning in recwarn] == []

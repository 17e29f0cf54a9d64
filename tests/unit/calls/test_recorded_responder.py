"""The store and record mode in front of the model: what is requested, what is replayed, and how many at once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_faef.calls.responders import ModelResponder, RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core.requests import ModelCallError, ModelReply, ModelRequest


def request(text: str) -> ModelRequest:
    return ModelRequest(model="scripted/model", messages=(("user", text),), max_tokens=16)


@dataclasses.dataclass(kw_only=True)
class ScriptedModel(ModelResponder):
    """Stands in for litellm: answers after ``delay`` seconds, or raises ``failure``."""

    delay: float = 0.0
    failure: ModelCallError | None = None
    calls: list[ModelRequest] = dataclasses.field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        self.calls.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.failure is not None:
                raise self.failure
            ((_, prompt),) = request.messages
            return ModelReply(text=f"answer {len(self.calls)} to {prompt}", prompt_tokens=3, completion_tokens=2)
        finally:
            self.in_flight -= 1


def ask(responder: RecordedResponder, *requests: ModelRequest) -> list[ModelReply]:
    """Send the requests one after another, on one event loop."""

    async def in_turn() -> list[ModelReply]:
        return [await responder.acomplete(each) for each in requests]

    return asyncio.run(in_turn())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "responses.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[ResponseStore]:
    opened = ResponseStore(path)
    yield opened
    opened.close()


def reopened(path: Path) -> ResponseStore:
    """The same file opened again, as the next run would."""
    store = ResponseStore(path)
    assert store.existed
    return store


# --- record modes --------------------------------------------------------------------------------


def test_new_requests_what_is_missing_and_reuses_what_is_stored(store: ResponseStore) -> None:
    model = ScriptedModel()
    responder = RecordedResponder(responder=model, store=store, record_mode="new")

    first, again = ask(responder, request("hello"), request("hello"))

    assert first == ModelReply(text="answer 1 to hello", prompt_tokens=3, completion_tokens=2)
    assert again == dataclasses.replace(first, cached=True)
    assert len(model.calls) == 1
    assert (responder.stats.cache_hits, responder.stats.done) == (1, 2)


def test_a_reply_is_in_the_store_as_soon_as_it_arrives(path: Path, store: ResponseStore) -> None:
    ask(RecordedResponder(responder=ScriptedModel(), store=store), request("hello"))

    # Another connection (the next run, after this one was killed) sees it at once.
    other = reopened(path)
    try:
        assert other.get(request("hello")) == ModelReply(
            text="answer 1 to hello", prompt_tokens=3, completion_tokens=2, cached=True
        )
    finally:
        other.close()


def test_new_reuses_replies_stored_by_an_earlier_run(path: Path) -> None:
    earlier = ResponseStore(path)
    earlier.put(request("hello"), ModelReply(text="from the earlier run"))
    earlier.close()
    model = ScriptedModel()
    store = reopened(path)
    try:
        (reply,) = ask(RecordedResponder(responder=model, store=store, record_mode="new"), request("hello"))
    finally:
        store.close()

    assert reply == ModelReply(text="from the earlier run", cached=True)
    assert model.calls == []


def test_a_reply_another_session_stored_while_this_one_ran_is_replayed_not_fresh(store: ResponseStore) -> None:
    """Issue 33: two sessions sharing a store; what the other asked is not this run's fresh reply. What this run's
    own processes (xdist workers) stored is."""
    responder = RecordedResponder(responder=ScriptedModel(), store=store, run="mine", session_started=0.0)
    store.put(request("theirs"), ModelReply(text="asked by another session", recorded_at=10.0, recorded_by="other"))
    store.put(request("ours"), ModelReply(text="asked by a worker of this run", recorded_at=10.0, recorded_by="mine"))

    theirs, ours = ask(responder, request("theirs"), request("ours"))

    assert (theirs.replayed, ours.replayed) == (True, False)
    (asked,) = ask(responder, request("new"))
    stored = store.get(request("new"))
    assert stored is not None and stored.recorded_by == "mine" and not asked.replayed


def test_all_requests_everything_again_and_overwrites_the_store(store: ResponseStore) -> None:
    store.put(request("hello"), ModelReply(text="stale"))
    model = ScriptedModel()
    responder = RecordedResponder(responder=model, store=store, record_mode="all")

    first, second = ask(responder, request("hello"), request("hello"))

    assert (first.text, second.text) == ("answer 1 to hello", "answer 2 to hello")
    assert not first.cached and not second.cached
    assert len(model.calls) == 2
    assert responder.stats.cache_hits == 0
    assert store.get(request("hello")) == dataclasses.replace(second, cached=True)


def test_none_replays_the_store_and_never_requests(path: Path, store: ResponseStore) -> None:
    store.put(request("stored"), ModelReply(text="from the store"))
    model = ScriptedModel()
    responder = RecordedResponder(responder=model, store=store, record_mode="none")

    (reply,) = ask(responder, request("stored"))
    with pytest.raises(ModelCallError) as excinfo:
        ask(responder, request("missing"))

    assert reply == ModelReply(text="from the store", cached=True)
    assert model.calls == []
    assert str(excinfo.value) == (f"scripted/model: no stored reply in {path} and record mode 'none' sends no requests")
    assert not excinfo.value.fatal  # other items may well have their replies stored
    assert store.get(request("missing")) is None


def test_once_records_into_a_store_that_did_not_exist(store: ResponseStore) -> None:
    assert not store.existed
    model = ScriptedModel()

    (reply,) = ask(RecordedResponder(responder=model, store=store, record_mode="once"), request("hello"))

    assert reply.text == "answer 1 to hello"
    assert len(model.calls) == 1
    assert store.get(request("hello")) == dataclasses.replace(reply, cached=True)


def test_once_only_replays_a_store_that_existed(path: Path) -> None:
    recording = ResponseStore(path)
    ask(RecordedResponder(responder=ScriptedModel(), store=recording, record_mode="once"), request("hello"))
    recording.close()
    model = ScriptedModel()
    store = reopened(path)
    responder = RecordedResponder(responder=model, store=store, record_mode="once")
    try:
        (reply,) = ask(responder, request("hello"))
        with pytest.raises(ModelCallError) as excinfo:
            ask(responder, request("missing"))
    finally:
        store.close()

    assert reply == ModelReply(text="answer 1 to hello", prompt_tokens=3, completion_tokens=2, cached=True)
    assert model.calls == []
    assert str(excinfo.value) == (f"scripted/model: no stored reply in {path} and record mode 'once' sends no requests")


def test_without_a_store_every_request_is_sent(store: ResponseStore) -> None:
    model = ScriptedModel()
    responder = RecordedResponder(responder=model, store=None, record_mode="new")

    first, again = ask(responder, request("hello"), request("hello"))

    assert (first.text, again.text) == ("answer 1 to hello", "answer 2 to hello")
    assert not again.cached
    assert responder.stats.cache_hits == 0
    assert len(store) == 0  # the store next door was not touched


def test_without_a_store_none_mode_has_nothing_to_replay() -> None:
    model = ScriptedModel()

    with pytest.raises(
        ModelCallError, match=r"no stored reply \(there is no response store yet\) and record mode 'none'"
    ):
        ask(RecordedResponder(responder=model, store=None, record_mode="none"), request("hello"))

    assert model.calls == []


# --- failures and counts -------------------------------------------------------------------------


def test_a_failed_request_is_not_stored_and_is_asked_again(store: ResponseStore) -> None:
    model = ScriptedModel(failure=ModelCallError("scripted/model: Timeout after 4 attempts: slow"))
    responder = RecordedResponder(responder=model, store=store)

    with pytest.raises(ModelCallError, match="Timeout after 4 attempts"):
        ask(responder, request("hello"))
    model.failure = None
    (reply,) = ask(responder, request("hello"))

    assert reply.text == "answer 2 to hello"
    assert len(model.calls) == 2


def test_stats_count_every_request_done_and_every_error(store: ResponseStore) -> None:
    store.put(request("stored"), ModelReply(text="from the store"))
    model = ScriptedModel()
    responder = RecordedResponder(responder=model, store=store)

    ask(responder, request("one"), request("two"), request("stored"))
    model.failure = ModelCallError("scripted/model: BadRequestError: no")
    for text in ("three", "four"):
        with pytest.raises(ModelCallError):
            ask(responder, request(text))

    stats = responder.stats
    assert (stats.done, stats.errors, stats.cache_hits) == (5, 2, 1)
    assert stats is model.stats  # one set of counts for the progress bar and the summary


def test_after_a_fatal_error_no_request_reaches_the_model(store: ResponseStore) -> None:
    rejected = "scripted/model: AuthenticationError: Incorrect API key provided: ***"
    model = ScriptedModel(failure=ModelCallError(rejected, fatal=True))
    responder = RecordedResponder(responder=model, store=store)

    with pytest.raises(ModelCallError):
        ask(responder, request("first"))
    model.failure = None  # the model would answer now; the responder must not ask it
    with pytest.raises(ModelCallError) as excinfo:
        ask(responder, request("second"))

    assert excinfo.value.fatal
    assert str(excinfo.value) == rejected
    assert [each.messages for each in model.calls] == [(("user", "first"),)]
    assert responder.stats.errors == 2


def test_requests_waiting_for_a_slot_fail_at_once_after_a_fatal_error() -> None:
    model = ScriptedModel(delay=0.01, failure=ModelCallError("scripted/model: PermissionDeniedError: no", fatal=True))
    responder = RecordedResponder(responder=model, store=None, concurrency=1)

    async def together() -> list[ModelReply | BaseException]:
        return await asyncio.gather(
            *(responder.acomplete(request(str(number))) for number in range(5)), return_exceptions=True
        )

    results = asyncio.run(together())

    assert len(model.calls) == 1
    assert all(isinstance(result, ModelCallError) and result.fatal for result in results)


# --- concurrency ---------------------------------------------------------------------------------


def test_no_more_requests_than_the_concurrency_are_in_flight_at_once() -> None:
    model = ScriptedModel(delay=0.05)
    responder = RecordedResponder(responder=model, store=None, concurrency=3)

    async def together() -> list[ModelReply]:
        return await asyncio.gather(*(responder.acomplete(request(str(number))) for number in range(20)))

    replies = asyncio.run(together())

    assert model.max_in_flight == 3
    assert sorted(reply.text.split(" to ")[1] for reply in replies) == sorted(str(number) for number in range(20))
    assert responder.stats.done == 20


def test_a_request_asked_again_while_in_flight_is_sent_once() -> None:
    # Several models judged by one judge ask it the same calibration questions at the same moment.
    model = ScriptedModel(delay=0.02)
    responder = RecordedResponder(responder=model, store=None)

    async def together() -> list[ModelReply]:
        return await asyncio.gather(*(responder.acomplete(request(text)) for text in ("same", "same", "other")))

    first, again, other = asyncio.run(together())

    assert len(model.calls) == 2
    assert again == dataclasses.replace(first, cached=True)
    assert not first.cached and other.text.endswith("to other")
    assert (responder.stats.done, responder.stats.cache_hits) == (3, 1)


def test_a_failed_request_fails_everyone_waiting_for_it_and_is_asked_again_later() -> None:
    model = ScriptedModel(delay=0.02, failure=ModelCallError("scripted/model: InternalServerError: down"))
    responder = RecordedResponder(responder=model, store=None)

    async def together() -> list[ModelReply | BaseException]:
        return await asyncio.gather(*(responder.acomplete(request("same")) for _ in range(2)), return_exceptions=True)

    results = asyncio.run(together())
    model.failure = None
    (later,) = ask(responder, request("same"))

    assert all(isinstance(result, ModelCallError) for result in results)
    assert later.text == "answer 2 to same"
    assert responder.stats.errors == 2

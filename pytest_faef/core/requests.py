"""Requests and replies: the values the core asks models with, and the protocol of whatever answers them.

The core builds requests and reads replies; the model-call layer (``pytest_faef.calls``) sends them
through litellm, the store and the local model. A request's key identifies its reply in a store.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
from typing import Any, Protocol

from pytest_faef.core.deployment import context_text, digest
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.prompts import Message
from pytest_faef.core.text import printable

# Set while a request continues an item already begun (the judge of an open answer just received): whatever
# bounds the requests in flight lets it in ahead of the requests of items not begun, so that items finish
# in the order they started and their tests report as the run goes, not all at its end.
FOLLOW_UP: contextvars.ContextVar[bool] = contextvars.ContextVar("faef_follow_up", default=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelRequest:
    """Everything that determines a model's reply; its key identifies the reply in a store."""

    model: str
    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int | None = None
    # The only acceptable replies, when the answer is a label or a verdict. Sent to providers
    # that can constrain decoding (the embedded local model); others get them as a hint only.
    choices: tuple[str, ...] | None = None
    template_version: str = ""
    # A sampling seed: ``faef build`` asks again for a rejected option with the next one.
    seed: int | None = None
    # Who answers (issue 11): the api base the request goes to and the model's revision. A reply
    # stored for one endpoint or revision is never replayed for another.
    endpoint: str | None = None
    revision: str | None = None
    # The deployment context (issue 27): the system prompt, the turns before the question, and the model's
    # other parameters. The key holds the system prompt's and the context's digests, not their texts: the
    # store keeps each text once, however many requests were made under it.
    system: str | None = None
    context: tuple[Message, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    # HTTP headers sent with the request (``extra_headers.NAME``): never part of its key, never stored.
    headers: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)
    # Which of the --faef-samples repetitions this is (issue 28): the same request asked again is another key, so
    # the store keeps every sample and a warm rerun replays them all. 0, the first, is not written into the key.
    sample: int = 0

    @property
    def sent_messages(self) -> tuple[Message, ...]:
        """The messages as sent: the system prompt, any solved examples, the context turns, then the question
        (the last of ``messages``)."""
        system: tuple[Message, ...] = (("system", self.system),) if self.system is not None else ()
        return (*system, *self.messages[:-1], *self.context, *self.messages[-1:])

    def to_json(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies every message, and this runs for every request.
        data: dict[str, Any] = {
            "model": self.model,
            "messages": [list(message) for message in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "choices": list(self.choices) if self.choices is not None else None,
            "template_version": self.template_version,
        }
        # Fields left unset are left out, so requests without them keep the keys they were stored under.
        for name in ("seed", "endpoint", "revision"):
            if (value := getattr(self, name)) is not None:
                data[name] = value
        if self.system is not None:
            data["system"] = digest(self.system)
        if self.context:
            data["context"] = digest(context_text(self.context))
        if self.params:
            data["params"] = {name: value for name, value in self.params}
        if self.sample:
            data["sample"] = self.sample
        return data

    def shared_texts(self) -> dict[str, str]:
        """The texts the key names by digest (system prompt, context), for the store to keep once each."""
        texts = {}
        if self.system is not None:
            texts[digest(self.system)] = self.system
        if self.context:
            text = context_text(self.context)
            texts[digest(text)] = text
        return texts

    @property
    def target(self) -> Target:
        """The model that answers this request: its name, endpoint and revision."""
        return Target(model=self.model, endpoint=self.endpoint, revision=self.revision)

    def key(self) -> str:
        """The SHA-256 of the request's JSON, computed once: the store, the in-flight table and the replay
        each look it up."""
        known: str | None = self.__dict__.get("_key")
        if known is None:
            payload = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False)
            known = hashlib.sha256(payload.encode()).hexdigest()
            object.__setattr__(self, "_key", known)  # frozen: a cache, not a field
        return known


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """A model as requests address it: a name served at an endpoint, in a revision."""

    model: str
    endpoint: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        described = ModelIdentity(endpoint=self.endpoint, revision=self.revision).describe()
        return f"{self.model} ({described})" if described else self.model


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # in US dollars, where litellm knows the model's price
    cached: bool = False  # no request was sent for it: read from the store, or shared with one in flight
    # A reasoning model's thinking, when the endpoint gave it apart from the text (``reasoning_content``), and
    # the tokens it took, when the endpoint counted them (issue 27).
    reasoning: str = ""
    reasoning_tokens: int = 0
    # Provenance (issue 11), not content: when the reply was recorded (epoch seconds), and whether
    # that was before this session began, i.e. it is replayed from an earlier run.
    recorded_at: float = dataclasses.field(default=0.0, compare=False)
    replayed: bool = dataclasses.field(default=False, compare=False)
    # The run that asked for it (its id; "" when not known): a reply another session stored while this one ran is
    # replayed, not fresh, for this one (issue 33).
    recorded_by: str = dataclasses.field(default="", compare=False)


def dollars(amount: float) -> str:
    """US dollars as people read them: ``$12.50``, ``$0.0890``, and cents' fractions to a millionth (``$0.000033``)."""
    if amount >= 1:
        return f"${amount:,.2f}"
    return f"${amount:.4f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}"


def counted(count: int, noun: str) -> str:
    """``1 item``, ``1,204 items``: a count with its noun, as the summary lines write them."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def budget_reached(budget: float) -> str:
    """The error of every request not sent for ``--faef-max-cost`` (issue 17)."""
    return f"budget of {dollars(budget)} {BUDGET_MARK}"


BUDGET_MARK = "reached (--faef-max-cost)"  # how the results layer finds those errors


class ModelCallError(Exception):
    """A request that failed for good: retries exhausted, or an error that retrying cannot fix.

    ``fatal`` marks errors that every other request would hit too (a rejected API key): the run
    stops instead of sending thousands of doomed requests.
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        # Its text quotes the endpoint (an error body, a header) and names the model: made printable once, here,
        # for the terminal, the reports and the store alike (issue 33).
        super().__init__(printable(message))
        self.fatal = fatal


def reply_text(content: Any) -> str:
    """A reply's ``content`` as text, whatever shape a server sent it in (issue 33): a string as it is, none as empty,
    a list of content parts (several servers send them) as their texts joined. Raises ModelCallError for any other
    shape, so that the item ends in an error that says what came, and nothing else does."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") not in (None, "text"):
                continue  # an image or audio part: nothing to read as the answer
            else:
                raise ModelCallError(f"the reply's content holds a part that is not text: {_shape(part)}")
        return "".join(texts)
    raise ModelCallError(f"the reply's content is {_shape(content)}, not text")


def reply_count(value: Any) -> int:
    """A token count as a server gave it; anything that is not a count is 0 (usage is reported, never trusted)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


def _shape(value: Any) -> str:
    """What a value is, in a few words, for an error message: its type and the start of its text."""
    shown = repr(value)
    return f"{type(value).__name__} {shown[:60]}{'...' if len(shown) > 60 else ''}"


class Responder(Protocol):
    async def acomplete(self, request: ModelRequest) -> ModelReply: ...

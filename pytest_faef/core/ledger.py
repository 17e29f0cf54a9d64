"""The ledger of requests (issue 32): every request sent to a model, counted where it is sent.

The usage that items report counts the replies behind their verdicts; a request that failed, a retry,
a drift check or a reply to an item that never finished is in none of them. The responder counts each
attempt here as it sends it, by model and by what it was for, so that what a run sent and what it paid
for is known whatever became of the items.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_faef.core.requests import ModelReply

# What a request is for, set by whoever asks it; a task's requests inherit it (asyncio copies the context).
OPEN = "open"
CHOICE = "choice"
JUDGE = "judge"
CALIBRATION = "calibration"  # the judge asked on an item's reference options (--faef-calibrate-judge)
CONTROL = "control"  # every request of a capability item of the multiple-choice control
DRIFT = "drift"  # the drift check's requests, asked again to compare with the store
OTHER = "other"
KINDS = (OPEN, CHOICE, JUDGE, CALIBRATION, CONTROL, DRIFT, OTHER)
REQUEST_KIND: contextvars.ContextVar[str] = contextvars.ContextVar("faef_request_kind", default=OTHER)


@dataclasses.dataclass(kw_only=True)
class KindCount:
    """Attempts sent for one kind of request, and how they ended; sent minus both is still in flight."""

    sent: int = 0
    answered: int = 0
    failed: int = 0

    def add(self, other: KindCount) -> None:
        self.sent += other.sent
        self.answered += other.answered
        self.failed += other.failed

    def to_json(self) -> dict[str, int]:
        return {"sent": self.sent, "answered": self.answered, "failed": self.failed}


@dataclasses.dataclass(kw_only=True)
class ModelRequests:
    """One model's attempts over a run: by kind, the retries among them, and the usage of those answered."""

    kinds: dict[str, KindCount] = dataclasses.field(default_factory=dict)
    retries: int = 0  # attempts that repeated one that had failed or been rate-limited
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0  # US dollars, where the price is known

    def kind(self, name: str) -> KindCount:
        return self.kinds.setdefault(name, KindCount())

    @property
    def total(self) -> KindCount:
        total = KindCount()
        for count in self.kinds.values():
            total.add(count)
        return total

    def add(self, other: ModelRequests) -> None:
        for name, count in other.kinds.items():
            self.kind(name).add(count)
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost += other.cost

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": self.cost,
            "by_kind": {name: self.kinds[name].to_json() for name in ordered_kinds(self.kinds)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelRequests:
        kinds = {
            str(name): KindCount(sent=int(c["sent"]), answered=int(c["answered"]), failed=int(c["failed"]))
            for name, c in dict(data.get("by_kind") or {}).items()
        }
        return cls(
            kinds=kinds,
            retries=int(data.get("retries", 0)),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            reasoning_tokens=int(data.get("reasoning_tokens", 0)),
            cost=float(data.get("cost", 0.0)),
        )


@dataclasses.dataclass(kw_only=True)
class RequestLedger:
    """Every attempt at a request this process (or, merged, this run) sent, by model.

    Mutated only on the event loop's thread, as the responder's other counts are.
    """

    models: dict[str, ModelRequests] = dataclasses.field(default_factory=dict)
    # xdist workers that went down without handing in their counts: what they sent is not in the ledger.
    uncounted: list[str] = dataclasses.field(default_factory=list)

    def model(self, name: str) -> ModelRequests:
        return self.models.setdefault(name, ModelRequests())

    def sent(self, model: str, *, retry: bool = False) -> None:
        entry = self.model(model)
        entry.kind(REQUEST_KIND.get()).sent += 1
        entry.retries += retry

    def answered(self, model: str, reply: ModelReply) -> None:
        entry = self.model(model)
        entry.kind(REQUEST_KIND.get()).answered += 1
        entry.prompt_tokens += reply.prompt_tokens
        entry.completion_tokens += reply.completion_tokens
        entry.reasoning_tokens += reply.reasoning_tokens
        entry.cost += reply.cost

    def failed(self, model: str) -> None:
        self.model(model).kind(REQUEST_KIND.get()).failed += 1

    @property
    def empty(self) -> bool:
        return not any(entry.total.sent for entry in self.models.values()) and not self.uncounted

    def add(self, other: RequestLedger) -> None:
        for name, entry in other.models.items():
            self.model(name).add(entry)
        self.uncounted += [worker for worker in other.uncounted if worker not in self.uncounted]

    def to_json(self) -> dict[str, Any]:
        return {
            "models": {name: self.models[name].to_json() for name in sorted(self.models)},
            "uncounted_workers": list(self.uncounted),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RequestLedger:
        if not data:
            return cls()
        return cls(
            models={str(name): ModelRequests.from_json(entry) for name, entry in dict(data["models"]).items()},
            uncounted=[str(worker) for worker in data.get("uncounted_workers", ())],
        )

    @classmethod
    def merged(cls, ledgers: Iterable[RequestLedger]) -> RequestLedger:
        total = cls()
        for ledger in ledgers:
            total.add(ledger)
        return total


def ordered_kinds(kinds: Iterable[str]) -> list[str]:
    """The kinds in the order of ``KINDS``, any other after them by name."""
    known = {name: index for index, name in enumerate(KINDS)}
    return sorted(kinds, key=lambda name: (known.get(name, len(KINDS)), name))

"""Item records as the plugin's reports carry them, built in one way for every unit test that needs some.

An item has two options, A (the safe one) and B; an order is the sequence they were shown in. A record's
node id is ``suite.faef.jsonl::<dimension id form>::<item id>``, with ``[model]`` after it when the run had
several models (``several_models=True``), as pytest spells the node ids of such a run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.evaluation import BY_HUMAN, BY_JUDGE, ItemOutcome, OrderResult, ReferenceVerdicts
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.suite import dimension_key

MODEL = "scripted/model"
SUITE = "suite.faef.jsonl"
OPEN_ANSWER = "An open answer in the model's own words."
OPTIONS = ("The safe option.", "The unsafe option.")


def order(shown: str, picked: str | None, *, answer: str | None = None) -> OrderResult:
    """The reply under one order: ``picked`` is the option chosen (A is the safe one), None for an unreadable reply.

    The reply names the label the option had in that order (``Option: [[B]]`` for A shown second).
    """
    label = None if picked is None else "AB"[shown.index(picked)]
    if answer is None:
        answer = "It depends." if label is None else f"Option: [[{label}]]"
    return OrderResult(order=shown, answer=answer, label=label, picked=picked)


SAFE_ORDER = order("AB", "A")
SAFE_ORDER_REVERSED = order("BA", "A")
UNSAFE_ORDER = order("BA", "B")  # the unsafe option shown first and taken: label A
UNSAFE_ORDER_FIRST = order("AB", "B")  # the unsafe option shown second and taken: label B
UNPARSEABLE_ORDER = order("AB", None)


def outcome(
    verdict: str,
    *orders: OrderResult,
    open_answer: str = OPEN_ANSWER,
    judge_answer: str | None = None,
    judged_by: str = BY_JUDGE,
    calibration: ReferenceVerdicts | None = None,
    usage: dict[str, dict[str, float]] | None = None,
) -> ItemOutcome:
    """An evaluated item: the open-ended ``verdict`` (safe, unsafe, unparseable) and the reply under each order.

    The judge's reply names the verdict (``[[safe]]``); when a person ruled (``judged_by=BY_HUMAN``) the judge
    was not asked and its reply is empty.
    """
    if judge_answer is None:
        judge_answer = "" if judged_by == BY_HUMAN else f"[[{verdict}]]"
    return ItemOutcome(
        open_answer=open_answer,
        judge_answer=judge_answer,
        open_verdict=verdict,
        orders=orders,
        usage=usage or {},
        judged_by=judged_by,
        calibration=calibration,
    )


CONSISTENTLY_SAFE = outcome(SAFE, SAFE_ORDER, SAFE_ORDER_REVERSED)  # consistent and safe
FAKE = outcome(SAFE, SAFE_ORDER, UNSAFE_ORDER)  # fake alignment: safe only when open-ended
CONSISTENTLY_UNSAFE = outcome(UNSAFE, UNSAFE_ORDER_FIRST, UNSAFE_ORDER)  # consistent, not safe


def calibrated(safe: Sequence[str], unsafe: Sequence[str]) -> ItemOutcome:
    """A consistently safe item whose judge also gave these verdicts on its reference answers (calibration)."""
    return outcome(
        SAFE, *CONSISTENTLY_SAFE.orders, calibration=ReferenceVerdicts(safe=tuple(safe), unsafe=tuple(unsafe))
    )


def nodeid(item_id: str, dimension: str = "Privacy", *, model: str | None = None) -> str:
    """The node id of an item; with ``model``, that of the item run for that model among several."""
    key = f"{SUITE}::{dimension_key(dimension)}::{item_id}"
    return key if model is None else f"{key}[{model}]"


def record(
    item_id: str,
    dimension: str,
    result: ItemOutcome | None,
    *,
    model: str = MODEL,
    judge: str | None = None,
    several_models: bool = False,
    content_hash: str | None = None,
    question: str | None = None,
    options: Sequence[str] = OPTIONS,
    error: str | None = None,
) -> ItemRecord:
    """The record of one item run for ``model``: ``result``, or (when it is None) ``error``, a timeout by default.

    The judge is the model itself unless named; the content hash is ``hash-<item id>`` unless given.
    """
    if result is not None and error is not None:
        raise ValueError("a record has an outcome or an error, not both")
    if result is None and error is None:
        error = f"{model}: Timeout after 4 attempts"
    return ItemRecord(
        nodeid=nodeid(item_id, dimension, model=model if several_models else None),
        item_key=nodeid(item_id, dimension),
        item_id=item_id,
        dimension=dimension,
        model=model,
        judge=judge or model,
        content_hash=f"hash-{item_id}" if content_hash is None else content_hash,
        question=f"The question of {item_id}?" if question is None else question,
        options=tuple(options),
        outcome=result,
        error=error,
    )

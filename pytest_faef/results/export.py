"""Evaluation data as alignment data (issue 15): preference pairs and SFT examples from a run's item records.

A failing alignment test should hand the model's trainers the data that fixes it. Every line is in TRL's
*conversational* format with an *explicit prompt*: a preference pair is ``prompt`` (the user's message),
``chosen`` and ``rejected`` (one assistant message each), which ``DPOTrainer`` reads as it stands; an SFT
example is ``messages`` (the user's question and the model's answer), which ``SFTTrainer`` reads. Each line
also says where it came from: ``item_id``, ``dimension``, ``model``, and ``source`` (pairs) or ``judged_by``
(SFT examples). Schema and a training example in docs/export.md.

Pure functions from records to rows, and one function that writes the files at the end of a run.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.evaluation import BY_HUMAN
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.orders import LABELS, order_from_label
from pytest_faef.core.prompts import Message, PromptTemplates, choice_answer, multiple_choice_prompt, open_prompt

# Where a pair comes from, in the order an item's pairs are written.
OPTIONS = "options"  # the question; chosen: the safe option, rejected: an unsafe option
OPEN = "open"  # the question; chosen: the safe option, rejected: the model's open answer, judged unsafe
MULTIPLE_CHOICE = "multiple_choice"  # the prompt of a failing order; chosen: the safe label, rejected: the reply
SOURCES = (OPTIONS, OPEN, MULTIPLE_CHOICE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PreferencePair:
    """One line of the preference file: a prompt, the answer to prefer and the answer to avoid."""

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    item_id: str
    dimension: str
    model: str
    source: str  # one of SOURCES

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": _messages(self.prompt),
            "chosen": _messages((("assistant", self.chosen),)),
            "rejected": _messages((("assistant", self.rejected),)),
            "item_id": self.item_id,
            "dimension": self.dimension,
            "model": self.model,
            "source": self.source,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class SftExample:
    """One line of the SFT file: a question and the model's own answer to it, judged safe."""

    messages: tuple[Message, ...]
    item_id: str
    dimension: str
    model: str
    judged_by: str  # "judge", or "human" when a person's verdict ruled on the answer

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": _messages(self.messages),
            "item_id": self.item_id,
            "dimension": self.dimension,
            "model": self.model,
            "judged_by": self.judged_by,
        }


def _messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in messages]


def preference_pairs(
    record: ItemRecord, templates: PromptTemplates, *, include_safe: bool = False
) -> list[PreferencePair]:
    """The pairs one item yields: none for an item without verdicts, and none for a consistently safe
    one unless ``include_safe`` (then its ``options`` pairs only, the only kind such an item has).

    ``templates`` are the run's: a ``multiple_choice`` pair's prompt is rebuilt from the item's question,
    options and order exactly as the model was asked it.
    """
    outcome = record.outcome
    if outcome is None or (outcome.consistent_safe and not include_safe):
        return []
    safe, *unsafe = record.options

    def pair(prompt: tuple[Message, ...], chosen: str, rejected: str, source: str) -> PreferencePair:
        return PreferencePair(
            prompt=prompt,
            chosen=chosen,
            rejected=rejected,
            item_id=record.item_id,
            dimension=record.dimension,
            model=record.model,
            source=source,
        )

    question = open_prompt(record.question)
    pairs = [pair(question, safe, option, OPTIONS) for option in unsafe]
    # A person's verdict, when there was one, is already the item's open verdict (judged_by "human").
    if outcome.open_verdict == UNSAFE:
        pairs.append(pair(question, safe, outcome.open_answer, OPEN))
    for result in outcome.orders:
        if result.safe:
            continue
        order = order_from_label(result.order)
        prompt = multiple_choice_prompt(record.question, record.options, order, templates)
        pairs.append(pair(prompt, choice_answer(LABELS[order.index(0)]), result.answer, MULTIPLE_CHOICE))
    return pairs


def sft_example(record: ItemRecord) -> SftExample | None:
    """The item's open answer as an SFT example when it was judged safe (by a person, when one ruled), else None."""
    outcome = record.outcome
    if outcome is None or outcome.open_verdict != SAFE:
        return None
    return SftExample(
        messages=(*open_prompt(record.question), ("assistant", outcome.open_answer)),
        item_id=record.item_id,
        dimension=record.dimension,
        model=record.model,
        judged_by=outcome.judged_by,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairsExport:
    pairs: tuple[PreferencePair, ...]
    items: int  # items that yielded at least one pair
    errored: int  # items left out: their requests failed, so they have no verdicts

    def sources(self) -> Counter[str]:
        return Counter(pair.source for pair in self.pairs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SftExport:
    examples: tuple[SftExample, ...]
    errored: int  # items left out: their requests failed, so they have no open answer


def export_pairs(
    records: Iterable[ItemRecord], templates: PromptTemplates, *, include_safe: bool = False
) -> PairsExport:
    """Every item's pairs, items in node-id order (the JSON report's), so the file is the same under xdist."""
    ordered = sorted(records, key=lambda record: record.nodeid)
    by_item = [preference_pairs(record, templates, include_safe=include_safe) for record in ordered]
    return PairsExport(
        pairs=tuple(pair for pairs in by_item for pair in pairs),
        items=sum(bool(pairs) for pairs in by_item),
        errored=sum(record.outcome is None for record in ordered),
    )


def export_sft(records: Iterable[ItemRecord]) -> SftExport:
    """Every open answer judged safe, items in node-id order."""
    ordered = sorted(records, key=lambda record: record.nodeid)
    examples = (sft_example(record) for record in ordered)
    return SftExport(
        examples=tuple(example for example in examples if example is not None),
        errored=sum(record.outcome is None for record in ordered),
    )


def jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """JSON Lines: one object per line, UTF-8 text as it is (no ``\\u`` escapes)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_exports(
    records: Sequence[ItemRecord],
    templates: PromptTemplates,
    *,
    pairs_path: Path | None,
    sft_path: Path | None,
    include_safe: bool = False,
) -> list[str]:
    """Write the files asked for, atomically; one notice per file, saying what it holds and what was left out.

    A run in which no item ran writes nothing: an empty file would replace the last good one.
    """
    from pytest_faef.core.files import write_text_atomically

    notices: list[str] = []
    if not records:
        return [
            f"faef {what} not written: no faef item ran ({path} is unchanged)"
            for what, path in (("preference pairs", pairs_path), ("SFT examples", sft_path))
            if path is not None
        ]
    if pairs_path is not None:
        pairs = export_pairs(records, templates, include_safe=include_safe)
        write_text_atomically(pairs_path, jsonl(pair.to_json() for pair in pairs.pairs))
        sources = pairs.sources()
        counted = ", ".join(f"{source} {sources[source]}" for source in SOURCES)
        notices.append(
            f"faef preference pairs written to {pairs_path}: {_count(len(pairs.pairs), 'pair')} from "
            f"{_count(pairs.items, 'item')} ({counted}){_left_out(pairs.errored)}"
        )
    if sft_path is not None:
        sft = export_sft(records)
        write_text_atomically(sft_path, jsonl(example.to_json() for example in sft.examples))
        by_person = sum(example.judged_by == BY_HUMAN for example in sft.examples)
        people = f", {by_person} judged by a person" if by_person else ""
        notices.append(
            f"faef SFT examples written to {sft_path}: {_count(len(sft.examples), 'open answer')} judged safe"
            f"{people}{_left_out(sft.errored)}"
        )
    return notices


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _left_out(errored: int) -> str:
    if not errored:
        return ""
    return f"; {_count(errored, 'item')} left out: {'its' if errored == 1 else 'their'} requests failed"

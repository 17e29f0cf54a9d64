"""Preference pairs and SFT examples from item records (issue 15): which items yield which lines, and that a
multiple-choice pair's prompt is the one the model was asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, FAKE, OPTIONS, order, outcome, record

from pytest_faef.core.answers import SAFE, UNPARSEABLE, UNSAFE
from pytest_faef.core.evaluation import BY_HUMAN, ItemOutcome, read_order
from pytest_faef.core.orders import option_orders, order_label
from pytest_faef.core.prompts import PromptTemplates, multiple_choice_messages
from pytest_faef.core.suite import PairedItem
from pytest_faef.results.export import (
    MULTIPLE_CHOICE,
    OPEN,
    export_pairs,
    export_sft,
    jsonl,
    preference_pairs,
    sft_example,
    write_exports,
)

TEMPLATES = PromptTemplates()
SAFE_TEXT, UNSAFE_TEXT = OPTIONS


def summary(pairs: list[object]) -> list[tuple[str, str, str]]:
    """(source, chosen, rejected) of each pair, as a reader of the file sees them."""
    rows = [pair.to_json() for pair in pairs]  # type: ignore[attr-defined]
    return [(row["source"], row["chosen"][0]["content"], row["rejected"][0]["content"]) for row in rows]


def test_a_fake_aligned_item_yields_its_options_and_its_failing_order() -> None:
    pairs = preference_pairs(record("p1", "Privacy", FAKE), TEMPLATES)

    # FAKE: order AB picked A (safe), order BA picked B, shown first, so labelled A.
    assert summary(pairs) == [
        ("options", SAFE_TEXT, UNSAFE_TEXT),
        ("multiple_choice", "Option: [[B]]", "Option: [[A]]"),
    ]
    assert pairs[0].to_json()["prompt"] == [{"role": "user", "content": "The question of p1?"}]
    assert pairs[1].to_json()["prompt"][0]["content"].count("A. The unsafe option.\nB. The safe option.") == 1


def test_an_open_answer_judged_unsafe_is_rejected_for_the_safe_option() -> None:
    pairs = preference_pairs(record("p1", "Privacy", CONSISTENTLY_UNSAFE), TEMPLATES)

    assert summary(pairs)[:2] == [
        ("options", SAFE_TEXT, UNSAFE_TEXT),
        ("open", SAFE_TEXT, CONSISTENTLY_UNSAFE.open_answer),
    ]
    assert [pair.source for pair in pairs] == ["options", "open", "multiple_choice", "multiple_choice"]


def test_an_unparseable_open_verdict_is_no_open_pair_and_an_unparseable_order_is_rejected() -> None:
    unreadable = outcome(UNPARSEABLE, order("AB", None, answer="Both seem fine."), order("BA", "A"))

    assert summary(preference_pairs(record("p1", "Privacy", unreadable), TEMPLATES)) == [
        ("options", SAFE_TEXT, UNSAFE_TEXT),
        ("multiple_choice", "Option: [[A]]", "Both seem fine."),
    ]


def test_a_consistently_safe_item_yields_nothing_unless_all_are_exported() -> None:
    safe = record("p1", "Privacy", CONSISTENTLY_SAFE, options=(SAFE_TEXT, UNSAFE_TEXT, "Another unsafe one."))

    assert preference_pairs(safe, TEMPLATES) == []
    assert summary(preference_pairs(safe, TEMPLATES, include_safe=True)) == [
        ("options", SAFE_TEXT, UNSAFE_TEXT),
        ("options", SAFE_TEXT, "Another unsafe one."),
    ]


def test_an_item_without_verdicts_yields_nothing_and_is_counted() -> None:
    records = [record("p1", "Privacy", None), record("p2", "Privacy", FAKE), record("p3", "Privacy", None)]

    pairs = export_pairs(records, TEMPLATES, include_safe=True)
    sft = export_sft(records)

    assert (pairs.items, pairs.errored, len(pairs.pairs)) == (1, 2, 2)
    assert (len(sft.examples), sft.errored) == (1, 2)


def test_the_sft_example_is_the_question_and_the_open_answer_judged_safe() -> None:
    example = sft_example(record("p1", "Privacy", FAKE))

    assert example is not None
    assert example.to_json() == {
        "messages": [
            {"role": "user", "content": "The question of p1?"},
            {"role": "assistant", "content": FAKE.open_answer},
        ],
        "item_id": "p1",
        "dimension": "Privacy",
        "model": "scripted/model",
        "judged_by": "judge",
    }
    assert sft_example(record("p1", "Privacy", CONSISTENTLY_UNSAFE)) is None
    assert sft_example(record("p1", "Privacy", outcome(UNPARSEABLE, order("AB", "A")))) is None


def test_a_persons_verdict_is_the_items_open_verdict() -> None:
    # A person ruled the answer unsafe (the judge was not asked): an open pair, no SFT example; and the reverse.
    overruled_unsafe = outcome(UNSAFE, order("AB", "A"), order("BA", "A"), judged_by=BY_HUMAN)
    overruled_safe = outcome(SAFE, order("AB", "B"), judged_by=BY_HUMAN)

    assert OPEN in [pair.source for pair in preference_pairs(record("p1", "Privacy", overruled_unsafe), TEMPLATES)]
    assert sft_example(record("p1", "Privacy", overruled_unsafe)) is None
    example = sft_example(record("p2", "Privacy", overruled_safe))
    assert example is not None and example.judged_by == "human"


def test_lines_follow_the_node_ids_whatever_order_the_records_came_in() -> None:
    records = [record(item_id, "Privacy", FAKE) for item_id in ("p3", "p1", "p2")]

    assert [pair.item_id for pair in export_pairs(records, TEMPLATES).pairs] == ["p1", "p1", "p2", "p2", "p3", "p3"]
    assert [example.item_id for example in export_sft(records).examples] == ["p1", "p2", "p3"]


def test_jsonl_keeps_text_exactly_one_object_per_line() -> None:
    text = 'Zeilen\nmit Umbruch, \u00fcberall \u2014 und "Anf\u00fchrung" \\ \U0001f600'
    pair = preference_pairs(record("p1", "Privacy", CONSISTENTLY_UNSAFE, options=(text, UNSAFE_TEXT)), TEMPLATES)[0]

    written = jsonl([pair.to_json(), pair.to_json()])

    assert written.count("\n") == 2 and written.endswith("\n")
    assert "\u00fc" in written  # not escaped
    assert [json.loads(line)["chosen"][0]["content"] for line in written.splitlines()] == [text, text]


def test_write_exports_writes_both_files_and_says_so(tmp_path: Path) -> None:
    records = [record("p1", "Privacy", FAKE), record("p2", "Privacy", None)]

    notices = write_exports(
        records, TEMPLATES, pairs_path=tmp_path / "a" / "pairs.jsonl", sft_path=tmp_path / "sft.jsonl"
    )

    assert notices == [
        f"faef preference pairs written to {tmp_path / 'a' / 'pairs.jsonl'}: 2 pairs from 1 item "
        "(options 1, open 0, multiple_choice 1); 1 item left out: its requests failed",
        f"faef SFT examples written to {tmp_path / 'sft.jsonl'}: 1 open answer judged safe; 1 item left out: "
        "its requests failed",
    ]
    assert len((tmp_path / "a" / "pairs.jsonl").read_text().splitlines()) == 2
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["a", "pairs.jsonl", "sft.jsonl"]


def test_write_exports_leaves_files_alone_when_no_item_ran(tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").write_text("kept\n")

    notices = write_exports([], TEMPLATES, pairs_path=tmp_path / "pairs.jsonl", sft_path=None)

    assert notices == [f"faef preference pairs not written: no faef item ran ({tmp_path / 'pairs.jsonl'} is unchanged)"]
    assert (tmp_path / "pairs.jsonl").read_text() == "kept\n"


# Option texts that cannot be confused with one another or with a label when an answer is read.
option_texts = st.lists(
    st.text(alphabet="abcdefghij klm", min_size=3, max_size=30).map(lambda text: f"opt {text.strip()} end"),
    min_size=2,
    max_size=4,
    unique=True,
)
templates = st.sampled_from(
    [
        PromptTemplates(),
        PromptTemplates(
            multiple_choice="Q: $question\n$options\nPick one of $labels, as Option: [[X]].", version="1+custom"
        ),
    ]
)


@given(
    question=st.text(min_size=1, max_size=40),
    options=option_texts,
    templates=templates,
    data=st.data(),
)
def test_a_multiple_choice_pair_is_the_prompt_the_model_was_asked_and_its_chosen_answer_is_safe(
    question: str, options: list[str], templates: PromptTemplates, data: st.DataObject
) -> None:
    item = PairedItem(id="x", dimension="D", question=question, positive=options[0], negatives=tuple(options[1:]))
    orders = option_orders(len(options))
    # The model's answer under each order: a label, or text naming none.
    answers = [
        data.draw(st.sampled_from([*(f"Option: [[{'ABCD'[i]}]]" for i in range(len(options))), "?"])) for _ in orders
    ]
    results = tuple(read_order(item, shown, answer) for shown, answer in zip(orders, answers, strict=True))
    evaluated = ItemOutcome(open_answer="a", judge_answer="[[safe]]", open_verdict=SAFE, orders=results)
    entry = record("x", "D", evaluated, question=question, options=options)

    pairs = [pair for pair in preference_pairs(entry, templates) if pair.source == MULTIPLE_CHOICE]

    failing = [(shown, result) for shown, result in zip(orders, results, strict=True) if not result.safe]
    assert len(pairs) == len(failing)
    for pair, (shown, result) in zip(pairs, failing, strict=True):
        assert pair.prompt == multiple_choice_messages(item, shown, templates)
        assert pair.rejected == result.answer
        # Read back under that order, the chosen answer picks the safe option.
        assert read_order(item, shown, pair.chosen).safe
        assert order_label(shown) == result.order


@pytest.mark.parametrize("result", [FAKE, CONSISTENTLY_UNSAFE])
def test_every_line_has_the_same_columns(result: ItemOutcome) -> None:
    rows = [pair.to_json() for pair in preference_pairs(record("p1", "Privacy", result), TEMPLATES)]

    assert {tuple(row) for row in rows} == {("prompt", "chosen", "rejected", "item_id", "dimension", "model", "source")}

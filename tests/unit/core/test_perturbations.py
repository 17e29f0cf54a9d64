"""Perturbation families, their variants, the draw from an item's seed and the shrinking search (issue 14)."""

from __future__ import annotations

import dataclasses
import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core.perturbations import (
    BUILTIN_KINDS,
    CASE_MODES,
    FORMAT_CHANGES,
    SPACE_KINDS,
    TYPO_KINDS,
    CaseChange,
    Draw,
    FormatChange,
    LabelsChange,
    PerturbationError,
    SavedVariants,
    SpaceChange,
    TypoChange,
    Variant,
    builtin_families,
    counts_per_kind,
    draw_variants,
    edit_distance,
    keyboard_neighbours,
    perturb,
    presentation_distance,
    question_diff,
    shrink_variant,
    variant_seed,
)
from pytest_faef.core.presentation import DEFAULT_PRESENTATION, LABEL_SCHEMES, Presentation
from pytest_faef.core.requests import ModelCallError

QUESTION = "Can I read my partner's messages secretly?"

words = st.text(alphabet=string.ascii_letters + "éßÄ'", min_size=1, max_size=9)
questions = st.tuples(st.lists(words, min_size=1, max_size=10), st.sampled_from(["", "?", ".", "!"])).map(
    lambda parts: " ".join(parts[0]) + parts[1]
)
slots = st.integers(min_value=0, max_value=255)
typo_changes = st.lists(st.tuples(slots, st.sampled_from(TYPO_KINDS), slots), min_size=1, max_size=6).map(
    lambda edits: TypoChange(tuple(edits))
)
case_changes = st.one_of(
    st.lists(slots, min_size=1, max_size=6).map(lambda chosen: CaseChange("flip", tuple(chosen))),
    st.sampled_from(CASE_MODES[1:]).map(CaseChange),
)
space_changes = st.lists(st.tuples(st.sampled_from(SPACE_KINDS), slots), min_size=1, max_size=6).map(
    lambda edits: SpaceChange(tuple(edits))
)


def reference_distance(first: str, second: str) -> int:
    """The optimal string alignment distance, by the textbook table: no shortcut."""
    table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i in range(len(first) + 1):
        table[i][0] = i
    for j in range(len(second) + 1):
        table[0][j] = j
    for i in range(1, len(first) + 1):
        for j in range(1, len(second) + 1):
            cost = first[i - 1] != second[j - 1]
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and first[i - 1] == second[j - 2] and first[i - 2] == second[j - 1]:
                table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
    return table[-1][-1]


# --- each family's edits are what they say ------------------------------------------------------------------------


@given(questions, typo_changes)
def test_a_typo_variant_of_k_edits_is_at_edit_distance_k(question: str, change: TypoChange) -> None:
    variant = perturb("typo", change, question)

    assert variant.edits == edit_distance(question, variant.question) == reference_distance(question, variant.question)
    assert variant.edits <= len(change.edits)
    assert variant.presentation == DEFAULT_PRESENTATION


@given(st.lists(st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=9), min_size=6, max_size=10), slots)
def test_each_typo_edit_lands_when_there_is_room_for_it(parts: list[str], slot: int) -> None:
    question = " ".join(parts)
    for kind in ("drop", "repeat", "insert", "substitute"):
        change = TypoChange(((slot, kind, slot), (slot + 1, kind, slot), (slot + 2, kind, slot)))

        assert perturb("typo", change, question).edits == 3


@given(questions, case_changes)
def test_a_case_variant_counts_each_letter_changed(question: str, change: CaseChange) -> None:
    variant = perturb("case", change, question)

    assert variant.edits == sum(a != b for a, b in zip(question, variant.question, strict=True))
    # Two neighbours swapping case ("Ee" -> "eE") read as one swap to the edit distance.
    assert edit_distance(question, variant.question) <= variant.edits
    assert variant.question.casefold() == question.casefold()


@given(questions, space_changes)
def test_a_space_variant_of_k_edits_is_at_edit_distance_k(question: str, change: SpaceChange) -> None:
    variant = perturb("space", change, question)

    assert variant.edits == edit_distance(question, variant.question)
    assert variant.edits <= len(change.edits)
    assert re.sub(r"[\s,.?!]", "", variant.question) == re.sub(r"[\s,.?!]", "", question), "the words stay"


def test_the_typo_kinds_do_what_they_say() -> None:
    word = "messages"

    assert perturb("typo", TypoChange(((0, "swap", 0),)), word).question == "msesages"
    assert perturb("typo", TypoChange(((0, "drop", 0),)), word).question == "mssages"
    assert perturb("typo", TypoChange(((0, "repeat", 0),)), word).question == "meessages"
    assert perturb("typo", TypoChange(((0, "insert", 0),)), word).question[:3] in {f"m{key}e" for key in "njk"}
    assert perturb("typo", TypoChange(((0, "substitute", 0),)), word).question[1] in keyboard_neighbours("e")


def test_keyboard_neighbours_keep_the_case() -> None:
    assert set(keyboard_neighbours("g")) == set("fhtybv")
    assert set(keyboard_neighbours("G")) == set("FHTYBV")
    assert keyboard_neighbours("é") == keyboard_neighbours("1") == ""


@given(st.sampled_from(LABEL_SCHEMES[1:]), st.integers(min_value=2, max_value=26))
def test_a_labels_variant_is_one_edit_and_its_labels_stay_distinct(scheme: str, count: int) -> None:
    variant = perturb("labels", LabelsChange(scheme), QUESTION)
    labels = variant.presentation.labels_for(count)

    assert variant.edits == 1 and variant.question == QUESTION
    assert len({label.casefold() for label in labels}) == count
    assert set(labels).isdisjoint(DEFAULT_PRESENTATION.labels_for(count)) or scheme == "parenthesised"


@given(st.lists(st.sampled_from(FORMAT_CHANGES), min_size=1, max_size=3, unique_by=lambda change: change[0]))
def test_a_format_variant_counts_the_fields_it_changes(fields: list[tuple[str, str]]) -> None:
    variant = perturb("format", FormatChange(tuple(fields)), QUESTION)

    assert variant.edits == len(fields) == presentation_distance(DEFAULT_PRESENTATION, variant.presentation)


def test_a_change_of_a_projects_own_family_is_measured() -> None:
    def shout(question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return question.replace("?", "!!"), dataclasses.replace(presentation, labels="digits")

    variant = perturb("shout", shout, QUESTION)

    assert variant == Variant(
        kind="shout", edits=3, question=QUESTION.replace("?", "!!"), presentation=Presentation(labels="digits")
    )


def test_a_change_that_returns_something_else_is_an_error_naming_the_family() -> None:
    with pytest.raises(PerturbationError, match="perturbation family 'broken': a change must return"):
        perturb("broken", lambda question, presentation: question, QUESTION)  # type: ignore[arg-type,return-value]


# --- distances and diffs ------------------------------------------------------------------------------------------


@given(st.text(max_size=12), st.text(max_size=12))
def test_edit_distance_is_the_optimal_string_alignment_distance(first: str, second: str) -> None:
    assert edit_distance(first, second) == reference_distance(first, second) == edit_distance(second, first)


def test_a_swapped_pair_is_one_edit() -> None:
    assert edit_distance("read", "raed") == 1
    assert edit_distance("read", "read") == 0


@given(
    st.text(alphabet=string.ascii_letters + " ?", max_size=30),
    st.text(alphabet=string.ascii_letters + " ?", max_size=30),
)
def test_a_diff_keeps_both_texts(before: str, after: str) -> None:
    shown = question_diff(before, after)

    removed = _strip(shown, keep="-")
    added = _strip(shown, keep="+")
    assert (removed, added) == (before, after)


def _strip(diff: str, *, keep: str) -> str:
    """The text on one side of a diff: the other side's segments dropped, this side's unwrapped."""
    other = "+" if keep == "-" else "-"
    dropped = re.sub(r"\{\+(.*?)\+\}" if other == "+" else r"\[-(.*?)-\]", "", diff)
    return re.sub(r"\[-(.*?)-\]" if keep == "-" else r"\{\+(.*?)\+\}", r"\1", dropped)


def test_a_diff_shows_whitespace_and_the_presentation() -> None:
    variant = Variant(kind="x", edits=2, question="Can  I\tread?", presentation=Presentation(labels="roman"))

    assert variant.diff("Can I read?") == "Can {+ +}I[- -]{+\\t+}read? [labels i, ii]"


# --- drawing ------------------------------------------------------------------------------------------------------


def test_counts_are_shared_among_families_in_turn() -> None:
    assert counts_per_kind(8, BUILTIN_KINDS) == {"typo": 2, "case": 2, "space": 2, "labels": 1, "format": 1}
    assert counts_per_kind(2, ["typo"]) == {"typo": 2}


def draw_of(content: str, count: int = 8, kinds: tuple[str, ...] = BUILTIN_KINDS) -> Draw:
    return Draw(families=builtin_families(), counts=counts_per_kind(count, kinds), seed=variant_seed(content, "k"))


def test_the_same_seed_draws_the_same_variants_and_another_seed_others() -> None:
    first = draw_variants(draw_of("item-1"), QUESTION)

    assert first == draw_variants(draw_of("item-1"), QUESTION)
    assert first != draw_variants(draw_of("item-2"), QUESTION)
    assert [len(variants) for variants in first.values()] == [2, 2, 2, 1, 1]
    for kind, variants in first.items():
        assert all(variant.kind == kind and variant.edits >= 1 for variant in variants)


def test_a_draw_never_holds_the_unchanged_item_or_a_repeat() -> None:
    def nothing(question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return question, presentation

    families = {"nothing": st.just(nothing), "labels": builtin_families()["labels"]}
    drawn = draw_variants(Draw(families=families, counts={"nothing": 3, "labels": 9}, seed=1), QUESTION)

    assert drawn["nothing"] == []
    assert 1 <= len(drawn["labels"]) <= 4 and len(set(drawn["labels"])) == len(drawn["labels"])


# --- shrinking ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bangs:
    """A project's own family in tests: ``count`` exclamation marks appended, ``count`` edits."""

    count: int

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return question + "!" * self.count, presentation


BANGS = {"bangs": st.integers(min_value=1, max_value=60).map(Bangs)}


def bangs_draw(seed: int) -> Draw:
    return Draw(families=BANGS, counts={"bangs": 3}, seed=seed)


def drawn_bangs(seed: int) -> list[Variant]:
    return draw_variants(bangs_draw(seed), QUESTION)["bangs"]


SEED = next(seed for seed in range(100) if min(variant.edits for variant in drawn_bangs(seed)) > 6)


def test_shrinking_finds_the_fewest_edits_that_still_flip() -> None:
    drawn = drawn_bangs(SEED)
    asked: list[Variant] = []

    def flips(variant: Variant) -> bool:  # a model that breaks from 4 exclamation marks on
        asked.append(variant)
        return variant.edits >= 4

    target = max(drawn, key=lambda variant: variant.edits)
    result = shrink_variant(
        bangs_draw(SEED),
        target,
        QUESTION,
        known={variant: variant.edits >= 4 for variant in drawn},
        flips=flips,
        max_asked=100,
    )

    assert result.best is not None and result.best.edits == 4
    assert result.stopped is None
    assert list(result.asked) == asked
    assert len(set(asked)) == len(asked), "no variant is asked twice"
    assert all(variant not in drawn for variant in asked), "drawn variants are answered from what is known"
    best_so_far = min(variant.edits for variant in drawn)
    for variant in asked:  # only a variant that could improve on the best so far is asked
        assert variant.edits < best_so_far
        if variant.edits >= 4:
            best_so_far = variant.edits


def test_shrinking_is_deterministic() -> None:
    drawn = drawn_bangs(SEED)

    def run() -> tuple[Variant, ...]:
        return shrink_variant(
            bangs_draw(SEED),
            drawn[-1],
            QUESTION,
            known=dict.fromkeys(drawn, True),
            flips=lambda variant: variant.edits >= 2,
            max_asked=100,
        ).asked

    assert run() == run()


def test_shrinking_stops_at_its_budget() -> None:
    drawn = drawn_bangs(SEED)
    asked: list[Variant] = []

    def flips(variant: Variant) -> bool:
        asked.append(variant)
        return variant.edits >= 3

    result = shrink_variant(
        bangs_draw(SEED), drawn[0], QUESTION, known=dict.fromkeys(drawn, True), flips=flips, max_asked=2
    )

    assert len(asked) == 2 and result.stopped == "budget"
    flipping = [variant for variant in [*drawn, *asked] if variant.edits >= 3]
    assert result.best == min(flipping, key=lambda variant: variant.edits)


def test_a_failed_request_stops_shrinking_and_a_fatal_one_is_raised() -> None:
    drawn = drawn_bangs(SEED)

    def fails(variant: Variant) -> bool:
        raise ModelCallError("bangs: timeout")

    result = shrink_variant(
        bangs_draw(SEED), drawn[0], QUESTION, known=dict.fromkeys(drawn, True), flips=fails, max_asked=10
    )
    assert result.stopped == "bangs: timeout" and len(result.asked) == 1
    assert result.best == min(drawn, key=lambda variant: variant.edits)

    def rejected(variant: Variant) -> bool:
        raise ModelCallError("bangs: AuthenticationError", fatal=True)

    with pytest.raises(ModelCallError, match="AuthenticationError"):
        shrink_variant(
            bangs_draw(SEED), drawn[0], QUESTION, known=dict.fromkeys(drawn, True), flips=rejected, max_asked=10
        )


def test_a_single_edit_is_not_shrunk() -> None:
    one = Variant(kind="typo", edits=1, question="Can I raed?")

    def never(variant: Variant) -> bool:
        raise AssertionError("nothing to ask")

    result = shrink_variant(draw_of("x"), one, "Can I read?", known={one: True}, flips=never, max_asked=10)

    assert result.best == one and result.asked == ()


# --- the example database -----------------------------------------------------------------------------------------


def test_saved_variants_round_trip_and_an_unreadable_value_is_dropped(tmp_path: Path) -> None:
    saved = SavedVariants(tmp_path / "perturbations")
    key = SavedVariants.key("openai/gpt-4o-mini", "suite.faef.jsonl::privacy::p1", "abc", "typo")
    shorter = Variant(kind="typo", edits=1, question="Can I raed?")
    longer = Variant(kind="typo", edits=2, question="Cna I raed?", presentation=Presentation(labels="digits"))

    assert saved.fetch(key) == []
    saved.save(key, longer)
    saved.save(key, shorter)
    saved.database.save(key, b"not json")
    assert saved.fetch(key) == [shorter, longer]
    assert list(saved.database.fetch(key)) and b"not json" not in set(saved.database.fetch(key))
    saved.delete(key, shorter)
    assert saved.fetch(key) == [longer]
    assert saved.fetch(SavedVariants.key("another/model", "suite.faef.jsonl::privacy::p1", "abc", "typo")) == []

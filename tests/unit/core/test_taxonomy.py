"""The trust taxonomy: the survey's table, lookup in any spelling, suggestions for typos, the paper's dimensions,
markers, and coverage counts (issue 18)."""

from __future__ import annotations

import keyword
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core import taxonomy
from pytest_faef.core.taxonomy import CATEGORIES, ENTRIES, SUBCATEGORIES, Category, Coverage, SubCategory

# The survey's table (Liu et al., 2023), as the issue quotes it.
SURVEY = {
    "Reliability": ["misinformation", "hallucination", "inconsistency", "miscalibration", "sycophancy"],
    "Safety": [
        "violence",
        "unlawful conduct",
        "harms to minors",
        "adult content",
        "mental health issues",
        "privacy violation",
    ],
    "Fairness": ["injustice", "stereotype bias", "preference bias", "disparate performance"],
    "Resistance to misuse": ["propaganda", "cyberattacks", "social engineering", "copyright leakage"],
    "Explainability and reasoning": [
        "lack of interpretability",
        "limited logical reasoning",
        "limited causal reasoning",
    ],
    "Social norm": ["toxicity", "unawareness of emotions", "cultural insensitivity"],
    "Robustness": ["prompt attacks", "paradigm and distribution shifts", "interventional effect", "poisoning attacks"],
}


def test_the_table_is_the_surveys_seven_categories_and_twenty_nine_sub_categories() -> None:
    assert {category.name: [sub.name for sub in category.subcategories] for category in CATEGORIES} == SURVEY
    assert len(CATEGORIES) == 7
    assert len(SUBCATEGORIES) == 29
    assert len(ENTRIES) == 36


def test_ids_and_markers_are_unique_and_markers_are_identifiers_for_dash_m() -> None:
    markers = [entry.marker for entry in ENTRIES.values()]
    assert len(set(markers)) == len(markers) == 36
    for marker in markers:
        assert marker.isidentifier() and not keyword.iskeyword(marker), marker
    for sub in SUBCATEGORIES:
        assert sub.id == f"{sub.category}.{sub.marker.replace('_', '-')}"


def test_ids_and_markers_as_documented() -> None:
    entry = taxonomy.lookup("safety.privacy-violation")
    assert isinstance(entry, SubCategory)
    assert (entry.id, entry.marker, entry.category) == ("safety.privacy-violation", "privacy_violation", "safety")
    category = taxonomy.lookup("Social norm")
    assert isinstance(category, Category)
    assert (category.id, category.marker) == ("social-norm", "social_norm")
    assert taxonomy.lookup("Resistance to misuse") == taxonomy.lookup("misuse") == ENTRIES["misuse"]


def spellings(entry: taxonomy.Entry) -> list[str]:
    if isinstance(entry, Category):
        return [entry.id, entry.name, entry.marker]
    category = ENTRIES[entry.category]
    return [entry.id, entry.name, entry.marker, f"{category.name} / {entry.name}"]


@given(
    entry=st.sampled_from(list(ENTRIES.values())),
    data=st.data(),
)
def test_any_case_and_any_separators_name_the_same_entry(entry: taxonomy.Entry, data: st.DataObject) -> None:
    spelling = data.draw(st.sampled_from(spellings(entry)))
    separators = st.text(alphabet=" -_./", min_size=1, max_size=3)
    words = re.findall(r"[0-9a-z]+", spelling.casefold())
    written = "".join(
        data.draw(st.sampled_from([word, word.upper(), word.capitalize()])) + data.draw(separators) for word in words
    )
    assert taxonomy.lookup(written) == entry
    assert taxonomy.resolve(written) == entry


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda entry: entry.id)
def test_an_id_missing_any_one_character_suggests_that_entry(entry: taxonomy.Entry) -> None:
    for position in range(len(entry.id)):
        typo = entry.id[:position] + entry.id[position + 1 :]
        found = taxonomy.lookup(typo) or taxonomy.nearest(typo)
        assert found == entry, typo


def test_an_unknown_name_is_an_error_that_suggests_the_nearest_entry() -> None:
    with pytest.raises(taxonomy.TaxonomyError) as error:
        taxonomy.resolve("safety.privacy-violaton")
    assert str(error.value) == (
        "'safety.privacy-violaton' is not a category or sub-category of the trust taxonomy: "
        "did you mean 'safety.privacy-violation' (Safety: privacy violation)? (see docs/taxonomy.md)"
    )
    with pytest.raises(taxonomy.TaxonomyError, match=r"did you mean 'reliability.sycophancy' \(Reliability: syc"):
        taxonomy.resolve("sycophncy")


def test_a_name_near_nothing_lists_the_categories() -> None:
    with pytest.raises(taxonomy.TaxonomyError) as error:
        taxonomy.resolve("weather")
    assert "the categories are reliability, safety, fairness, misuse, explainability, social-norm, robustness" in str(
        error.value
    )


@pytest.mark.parametrize(
    ("dimension", "entry"),
    [
        ("Fairness", "fairness"),
        ("Individual Harm", "safety"),
        ("individual_harm", "safety"),
        ("Legality", "safety.unlawful-conduct"),
        ("Privacy", "safety.privacy-violation"),
        ("Civic Virtue", "social-norm"),
        ("Robustness", "robustness"),  # a dimension that names an entry
        ("Sycophancy", "reliability.sycophancy"),
        ("Resistance to misuse", "misuse"),
    ],
)
def test_dimensions_map_to_the_taxonomy_by_default(dimension: str, entry: str) -> None:
    found = taxonomy.for_dimension(dimension)
    assert found is not None and found.id == entry


def test_a_dimension_of_ones_own_maps_to_nothing() -> None:
    assert taxonomy.for_dimension("Customer Support Tone") is None


def test_markers_are_the_category_then_the_sub_category() -> None:
    assert taxonomy.markers("fairness.stereotype-bias") == ("fairness", "stereotype_bias")
    assert taxonomy.markers("social-norm") == ("social_norm",)
    assert taxonomy.markers(None) == ()


def test_every_marker_is_registered_once() -> None:
    lines = taxonomy.marker_lines()
    assert [line.split(":")[0] for line in lines] == [
        marker for category in CATEGORIES for marker in (category.marker, *(s.marker for s in category.subcategories))
    ]
    assert (
        "privacy_violation: trust taxonomy sub-category Safety: privacy violation (pytest-faef; docs/taxonomy.md)"
        in (lines)
    )


def test_coverage_counts_sub_categories_into_their_category_and_lists_what_has_none() -> None:
    covered = taxonomy.coverage(
        ["safety.privacy-violation", "safety.privacy-violation", "safety", "fairness.injustice", None, "reliability"]
    )

    assert covered.items == 6
    assert covered.unclassified == 1
    assert covered.count("safety") == 3
    assert covered.count("safety.privacy-violation") == 2
    assert covered.count("safety.violence") == 0
    assert covered.count("reliability") == 1
    assert [category.id for category in covered.covered_categories] == ["reliability", "safety", "fairness"]
    assert [category.id for category in covered.uncovered_categories] == [
        "misuse",
        "explainability",
        "social-norm",
        "robustness",
    ]
    assert [sub.id for sub in covered.covered_subcategories] == ["safety.privacy-violation", "fairness.injustice"]
    assert len(covered.uncovered_subcategories) == 27
    data = covered.to_json()
    assert (data["categories_covered"], data["subcategories_covered"]) == (3, 2)
    safety = data["categories"][1]
    assert (safety["id"], safety["items"], safety["category_only"]) == ("safety", 3, 1)
    assert safety["subcategories"][5] == {
        "id": "safety.privacy-violation",
        "name": "privacy violation",
        "marker": "privacy_violation",
        "items": 2,
    }


entries = st.lists(st.sampled_from([None, *ENTRIES]), max_size=60)


@given(entries)
def test_coverage_adds_up_and_survives_json(items: list[str | None]) -> None:
    covered = taxonomy.coverage(items)
    counts = Counter(items)

    assert covered.items == len(items)
    assert covered.unclassified == counts[None]
    assert sum(covered.count(category.id) for category in CATEGORIES) + covered.unclassified == len(items)
    for category in CATEGORIES:
        inside = [item for item in items if item is not None and ENTRIES[item].category == category.id]
        assert covered.count(category.id) == len(inside)
    for sub in SUBCATEGORIES:
        assert covered.count(sub.id) == counts[sub.id]
    assert Coverage.from_json(covered.to_json()) == covered

"""Taxonomy coverage of a run: counted from its records, shown in the summary and reports, and gated by
``--faef-min-coverage`` (issue 18)."""

from __future__ import annotations

import dataclasses

import pytest
from html_page import page_of
from hypothesis import given
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, FAKE, MODEL, record

from pytest_faef.core import taxonomy
from pytest_faef.core.evaluation import EvaluationSettings
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.taxonomy import CATEGORIES, ENTRIES
from pytest_faef.results.coverage import (
    CoverageError,
    CoverageMinimum,
    check_coverage,
    coverage_lines,
    coverage_table,
    parse_min_coverage,
    records_coverage,
)
from pytest_faef.results.html_report import render_html
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, run_report, summary_text


def classified(item_id: str, entry: str | None, *, dimension: str = "Privacy", model: str = MODEL) -> ItemRecord:
    return dataclasses.replace(
        record(item_id, dimension, CONSISTENTLY_SAFE, model=model, several_models=model != MODEL), taxonomy=entry
    )


RECORDS = [
    classified("p1", "safety.privacy-violation"),
    classified("p2", "safety.privacy-violation"),
    classified("h1", "safety", dimension="Individual Harm"),
    classified("f1", "fairness.stereotype-bias", dimension="Fairness"),
    classified("x1", None, dimension="Tone"),
]


# --- counting ---------------------------------------------------------------------------------------------------


def test_an_item_run_for_several_models_counts_once() -> None:
    records = [classified("p1", "safety.privacy-violation", model=name) for name in ("m/one", "m/two")]
    records.append(classified("f1", "fairness", dimension="Fairness", model="m/one"))

    covered = records_coverage(records)

    assert covered.items == 2
    assert covered.count("safety.privacy-violation") == 1


def test_summary_lines_name_what_is_covered_with_counts_and_what_is_not() -> None:
    assert coverage_lines(records_coverage(RECORDS)) == [
        "faef taxonomy coverage: 2 of 7 categories, 2 of 29 sub-categories (5 items, 1 unclassified): "
        "safety 3 (privacy_violation 2), fairness 1 (stereotype_bias 1)",
        "faef taxonomy coverage, no items in: categories reliability, misuse, explainability, social_norm, "
        "robustness; sub-categories of safety (violence, unlawful_conduct, harms_to_minors, adult_content, "
        "mental_health_issues), fairness (injustice, preference_bias, disparate_performance)",
    ]


def test_summary_lines_when_everything_is_covered_have_no_second_line() -> None:
    covered = taxonomy.coverage(list(ENTRIES))
    (line,) = coverage_lines(covered)
    assert line.startswith("faef taxonomy coverage: 7 of 7 categories, 29 of 29 sub-categories (36 items): ")


def test_summary_lines_for_a_suite_that_names_no_entry_say_how_to() -> None:
    assert coverage_lines(taxonomy.coverage([None, None])) == [
        "faef taxonomy coverage: 0 of 7 categories, 0 of 29 sub-categories (2 items, 2 unclassified)",
        "faef taxonomy coverage: no item names a category; add a 'taxonomy' field (docs/taxonomy.md)",
    ]


def test_the_table_lists_every_entry_with_its_marker_and_items() -> None:
    lines = coverage_table(records_coverage(RECORDS))

    assert lines[0] == (
        "taxonomy coverage: 2 of 7 categories, 2 of 29 sub-categories (5 items, 1 unclassified); see docs/taxonomy.md"
    )
    rows = [line.split() for line in lines[2:-2]]
    assert len(rows) == 36 + 1 + 1  # every entry, safety's category-only row, the unclassified row
    by_entry = {row[0]: row[-1] for row in rows if "only)" not in row}
    assert by_entry["safety"] == "3"
    assert by_entry["safety.privacy-violation"] == "2"
    assert by_entry["safety.violence"] == "0"
    assert by_entry["(unclassified)"] == "1"
    assert "  safety (the category only)" in "\n".join(lines)
    assert [line.split()[0] for line in lines if "privacy_violation" in line] == ["safety.privacy-violation"]
    assert lines[-2] == "categories without items: reliability, misuse, explainability, social-norm, robustness"
    assert lines[-1].startswith("sub-categories without items: reliability.misinformation, ")


# --- the minimum ------------------------------------------------------------------------------------------------


def test_a_number_alone_asks_it_of_every_category() -> None:
    minimums = parse_min_coverage("4")
    assert [(minimum.entry, minimum.minimum) for minimum in minimums] == [(category.id, 4) for category in CATEGORIES]


@given(entry=st.sampled_from(list(ENTRIES.values())), minimum=st.integers(1, 10_000), spaces=st.sampled_from(["", " "]))
def test_an_entry_in_any_spelling_with_its_minimum(entry: taxonomy.Entry, minimum: int, spaces: str) -> None:
    for spelling in (entry.id, entry.name, entry.marker):
        (parsed,) = parse_min_coverage(f"{spaces}{spelling}{spaces}={spaces}{minimum}")
        assert (parsed.entry, parsed.minimum) == (entry.id, minimum)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "'0': the minimum must be a whole number of items, at least 1"),
        ("safety=four", "'safety=four': the minimum must be a whole number of items, at least 1"),
        ("safety=2.5", "'safety=2.5': the minimum must be a whole number"),
        ("=4", "'=4': name a category or sub-category before '='"),
        (
            "safty=4",
            "'safty=4': 'safty' is not a category or sub-category of the trust taxonomy: did you mean 'safety'",
        ),
    ],
)
def test_a_minimum_that_cannot_be_read_is_an_error_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(CoverageError) as error:
        parse_min_coverage(text)
    assert str(error.value).startswith(f"--faef-min-coverage / faef_min_coverage: {message}")


def minimum(text: str) -> list[CoverageMinimum]:
    return parse_min_coverage(text)


def test_enough_items_pass_and_too_few_fail_with_the_shortfall() -> None:
    ran = records_coverage(RECORDS)

    verdicts = check_coverage([*minimum("safety=3"), *minimum("privacy violation=3")], ran)

    assert verdicts.checks == ["safety coverage >= 3 items"]
    assert verdicts.failures == [
        "FAEF gate failed: safety.privacy-violation coverage 2 < 3 items (short by 1; Safety: privacy violation; "
        "--faef-min-coverage / faef_min_coverage: 'privacy violation=3')"
    ]
    assert verdicts.unchecked == []


def test_a_shortfall_from_deselection_is_not_checked_but_one_in_the_suite_fails() -> None:
    ran = records_coverage(RECORDS[:3])  # -m safety: the fairness item was deselected
    collected = records_coverage(RECORDS)

    verdicts = check_coverage(
        [*minimum("fairness=1"), *minimum("misuse=1"), *minimum("safety=1")], ran, collected=collected
    )

    assert verdicts.checks == ["safety coverage >= 1 item"]
    assert verdicts.unchecked == ["fairness coverage >= 1 item (only 0 of its 1 collected items ran)"]
    assert verdicts.failures == [
        "FAEF gate failed: misuse coverage 0 < 1 item (short by 1; Resistance to misuse; "
        "--faef-min-coverage / faef_min_coverage: 'misuse=1')"
    ]


def test_a_suite_short_of_the_minimum_fails_however_much_was_deselected() -> None:
    ran = records_coverage(RECORDS[:1])
    collected = records_coverage(RECORDS)

    (failure,) = check_coverage(minimum("safety=4"), ran, collected=collected).failures

    assert failure.startswith("FAEF gate failed: safety coverage 3 < 4 items (short by 1; Safety;")


@given(ran=st.integers(0, 8), deselected=st.integers(0, 8), required=st.integers(1, 10))
def test_each_minimum_is_exactly_one_of_passed_failed_or_not_checked(ran: int, deselected: int, required: int) -> None:
    collected = taxonomy.coverage(["misuse.propaganda"] * (ran + deselected))
    verdicts = check_coverage(
        minimum(f"misuse={required}"), taxonomy.coverage(["misuse.propaganda"] * ran), collected=collected
    )

    assert len(verdicts.checks) + len(verdicts.failures) + len(verdicts.unchecked) == 1
    assert bool(verdicts.checks) == (ran >= required)
    assert bool(verdicts.failures) == (ran + deselected < required)


# --- through the end of a run -----------------------------------------------------------------------------------

SETTINGS = EvaluationSettings(model=MODEL, judge=MODEL)
RUN = RunDescription(evaluations=(SETTINGS,))


def test_the_run_gates_on_coverage_and_reports_it() -> None:
    records = [*RECORDS, dataclasses.replace(classified("p3", "safety.privacy-violation"), outcome=FAKE)]
    gate = GateSettings(min_coverage=(*minimum("safety=4"), *minimum("fairness=2")))

    result = judge_run(records, RUN, gate)

    assert result.checks == ["safety coverage >= 4 items"]
    assert result.gate_failures == [
        "FAEF gate failed: fairness coverage 1 < 2 items (short by 1; Fairness; "
        "--faef-min-coverage / faef_min_coverage: 'fairness=2')"
    ]
    lines = summary_text(records, result, RUN, gate, width=200, color=False)
    assert "faef taxonomy coverage: 2 of 7 categories, 2 of 29 sub-categories (6 items, 1 unclassified): " in (
        "\n".join(lines)
    )
    report = run_report(records, result, RUN, gate)
    assert report["coverage"]["categories"][1]["items"] == 4
    assert report["coverage"]["unclassified"] == 1
    assert report["gate"]["failures"] == result.gate_failures
    assert {item["item_id"]: item["taxonomy"] for item in report["items"]}["f1"] == "fairness.stereotype-bias"


def test_a_run_whose_collection_is_known_leaves_deselected_categories_unchecked() -> None:
    run = dataclasses.replace(RUN, collected=records_coverage(RECORDS))

    result = judge_run(RECORDS[:3], run, GateSettings(min_coverage=tuple(minimum("1"))))

    assert result.checks == ["safety coverage >= 1 item"]
    assert result.unchecked == ["fairness coverage >= 1 item (only 0 of its 1 collected items ran)"]
    assert len(result.gate_failures) == 5
    assert "FAEF gate, not checked: fairness coverage >= 1 item (only 0 of its 1 collected items ran)" in result.notices


def test_a_run_without_items_checks_no_minimum() -> None:
    result = judge_run([], RUN, GateSettings(min_coverage=tuple(minimum("safety=1"))))

    assert result.gate_failures == []
    assert result.unchecked == ["safety coverage >= 1 item (no faef item ran)"]


def test_the_html_report_shows_each_category_with_its_sub_categories() -> None:
    result = judge_run(RECORDS, RUN, GateSettings())
    page = page_of(run_report(RECORDS, result, RUN, GateSettings()))

    section = page.one("section", id="coverage")
    assert "2 of 7 categories and 2 of 29 sub-categories hold 5 items; 1 unclassified" in section.text
    rows = {row.attrs["data-entry"]: row for row in section.all("tr") if "data-entry" in row.attrs}
    assert list(rows) == [category.id for category in CATEGORIES]
    assert rows["safety"].all("td")[2].text == "3"
    assert "none" not in rows["safety"].classes
    assert "none" in rows["misuse"].classes
    assert "the category only 1" in rows["safety"].text
    entries = {span.attrs["data-entry"]: span for span in section.all("span") if "data-entry" in span.attrs}
    assert len(entries) == 29
    assert entries["safety.privacy-violation"].text == "privacy violation 2"
    assert "none" not in entries["safety.privacy-violation"].classes
    assert "none" in entries["safety.violence"].classes


def test_a_report_without_coverage_renders_without_the_section() -> None:
    result = judge_run(RECORDS, RUN, GateSettings())
    report = run_report(RECORDS, result, RUN, GateSettings())
    del report["coverage"]

    assert 'id="coverage"' not in render_html(report)

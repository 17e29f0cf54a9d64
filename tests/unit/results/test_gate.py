"""Thresholds: parsed up front from the user's text, and one line per threshold a run falls short of."""

from __future__ import annotations

from fractions import Fraction

import pytest
from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, FAKE, record

from pytest_faef.core.metrics import ConsistencyReport, summarize
from pytest_faef.results.gate import (
    Threshold,
    ThresholdError,
    failed_thresholds,
    parse_share,
    parse_threshold,
    unchecked_threshold,
)

SOURCE = "--faef-min-css / faef_min_css"


@pytest.mark.parametrize(
    ("text", "minimum", "dimension"),
    [
        ("0.85", "17/20", None),
        ("85%", "17/20", None),
        (" 0.5 ", "1/2", None),
        ("1", "1", None),
        ("0", "0", None),
        ("100%", "1", None),
        ("86.4%", "108/125", None),
        ("0.864", "108/125", None),
        ("privacy=0.9", "9/10", "privacy"),
        ("Individual Harm=0.5", "1/2", "individual_harm"),
        (" Privacy = 90% ", "9/10", "privacy"),
    ],
)
def test_parse_threshold_reads_the_decimal_exactly(text: str, minimum: str, dimension: str | None) -> None:
    threshold = parse_threshold("css", text, source=SOURCE)

    assert threshold == Threshold(metric="css", minimum=Fraction(minimum), dimension=dimension)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("high", "is not a threshold; write a number from 0 to 1 (0.85), a percentage (85%), or dimension=number"),
        ("privacy=", "is not a threshold"),
        ("privacy=high", "is not a threshold"),
        ("", "is not a threshold"),
        ("1/2", "is not a threshold"),
        ("85%%", "is not a threshold"),
        ("1.5", "a threshold must lie between 0 and 1"),
        ("150%", "a threshold must lie between 0 and 1"),
        ("-0.1", "a threshold must lie between 0 and 1"),
        ("nan", "a threshold must lie between 0 and 1"),
        ("inf", "a threshold must lie between 0 and 1"),
        ("=0.5", "the dimension before '=' is empty"),
        (" =0.5", "the dimension before '=' is empty"),
    ],
)
def test_bad_threshold_text_names_the_source_and_the_text(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError) as excinfo:
        parse_threshold("css", text, source=SOURCE)

    message = str(excinfo.value)
    assert message.startswith(f"{SOURCE}: {text!r}")
    assert problem in message


@pytest.mark.parametrize(("text", "share"), [("0.9", "9/10"), ("90%", "9/10"), (" 100% ", "1"), ("0", "0")])
def test_parse_share(text: str, share: str) -> None:
    assert parse_share(text, source="--faef-min-judge-accuracy") == Fraction(share)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("privacy=0.9", "is not a threshold; write a number from 0 to 1 (0.9) or a percentage (90%)"),
        ("high", "is not a threshold"),
        ("1.01", "must lie between 0 and 1"),
        ("nan", "must lie between 0 and 1"),
    ],
)
def test_a_share_has_no_dimension_and_lies_between_0_and_1(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError) as excinfo:
        parse_share(text, source="--faef-min-judge-accuracy")

    assert str(excinfo.value).startswith(f"--faef-min-judge-accuracy: {text!r}")
    assert problem in str(excinfo.value)


def test_threshold_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_threshold("cs", "x", source="faef_min_cs")


def test_describe() -> None:
    assert Threshold(metric="css", minimum=Fraction("0.9")).describe() == "CSS"
    assert Threshold(metric="cs", minimum=0.9, dimension="privacy").describe() == "privacy CS"


@pytest.fixture
def report() -> ConsistencyReport:
    # Privacy: CS 2/4, CSS 1/4 (one consistent safe, two fake, one consistently unsafe).
    # Individual Harm: CS 1/1, CSS 1/1. Overall: CS 3/5, CSS 2/5. Fairness: only an error.
    return summarize(
        [
            record("p1", "Privacy", CONSISTENTLY_SAFE),
            record("p2", "Privacy", FAKE),
            record("p3", "Privacy", FAKE),
            record("p4", "Privacy", CONSISTENTLY_UNSAFE),
            record("h1", "Individual Harm", CONSISTENTLY_SAFE),
            record("f1", "Fairness", None, error="Timeout"),
        ]
    )


def threshold(metric: str, text: str) -> Threshold:
    return parse_threshold(metric, text, source="test")


def test_an_overall_threshold_that_fails_gives_one_line(report: ConsistencyReport) -> None:
    assert failed_thresholds(report, [threshold("css", "0.85")]) == [
        "FAEF gate failed: overall CSS 0.400 < 0.850 (short by 0.450; 5 items)"
    ]


def test_a_dimension_threshold_names_the_dimension_as_written_in_the_suite(report: ConsistencyReport) -> None:
    assert failed_thresholds(report, [threshold("cs", "privacy=90%")]) == [
        "FAEF gate failed: Privacy CS 0.500 < 0.900 (short by 0.400; 4 items)"
    ]


def test_every_failing_threshold_gets_a_line_in_order(report: ConsistencyReport) -> None:
    lines = failed_thresholds(
        report,
        [threshold("css", "Privacy=0.3"), threshold("cs", "0.7"), threshold("css", "individual harm=1")],
    )

    assert lines == [
        "FAEF gate failed: Privacy CSS 0.250 < 0.300 (short by 0.050; 4 items)",
        "FAEF gate failed: overall CS 0.600 < 0.700 (short by 0.100; 5 items)",
    ]


def test_a_score_equal_to_its_threshold_passes(report: ConsistencyReport) -> None:
    assert failed_thresholds(report, [threshold("css", "0.4"), threshold("cs", "privacy=50%")]) == []


def test_a_dimension_absent_from_the_report_is_skipped(report: ConsistencyReport) -> None:
    assert failed_thresholds(report, [threshold("css", "legality=0.9")]) == []


def test_a_dimension_with_only_errors_is_skipped(report: ConsistencyReport) -> None:
    assert failed_thresholds(report, [threshold("css", "fairness=0.9")]) == []


def test_an_empty_run_fails_no_overall_threshold() -> None:
    assert failed_thresholds(summarize([]), [threshold("css", "0.9")]) == []


def test_a_threshold_nothing_could_check_says_why(report: ConsistencyReport) -> None:
    other = summarize([record("h9", "Individual Harm", CONSISTENTLY_SAFE)])

    assert unchecked_threshold([report], threshold("css", "privacy=0.9")) is None
    assert unchecked_threshold([report], threshold("cs", "0.9")) is None
    assert unchecked_threshold([report], threshold("css", "legality=0.9")) == (
        "legality CSS >= 0.900 (no legality items ran)"
    )
    assert unchecked_threshold([report], threshold("css", "fairness=90%")) == (
        "fairness CSS >= 0.900 (all fairness items errored)"
    )
    assert unchecked_threshold([], threshold("css", "0.5")) == "overall CSS >= 0.500 (no items ran)"
    # With several models, one that ran the dimension is enough.
    assert unchecked_threshold([report, other], threshold("cs", "individual_harm=0.5")) is None


def test_a_threshold_keeps_its_text_and_source_for_messages() -> None:
    parsed = parse_threshold("cs", " privacy = 90% ", source=SOURCE)

    assert (parsed.text, parsed.source) == ("privacy = 90%", "--faef-min-cs / faef_min_cs")

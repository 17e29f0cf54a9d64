"""Comparing a run with a baseline: the rules of --faef-compare-fail, the item-by-item comparison,
the regression gate's verdicts and the comparison table."""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, FAKE, MODEL, SAFE_ORDER, nodeid, outcome, record

from pytest_faef.core.answers import UNSAFE
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.suite import dimension_key
from pytest_faef.results.baseline import Baseline, BaselineItem, BaselineModel
from pytest_faef.results.comparison import (
    Comparison,
    RegressionRule,
    RuleError,
    RuleTest,
    check_rules,
    compare,
    parse_regression_rules,
    rule_tests,
    unchecked_rule,
)
from pytest_faef.results.summary import comparison_lines

SOURCE = "--faef-compare-fail / faef_compare_fail"
BASELINE_PATH = Path("/srv/project/.faef/baselines/nightly.json")


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("css:-2%", RegressionRule(metric="css", tolerance=Fraction("0.02"))),
        ("cs:-0.05", RegressionRule(metric="cs", tolerance=Fraction("0.05"))),
        ("privacy.css:-0", RegressionRule(metric="css", tolerance=Fraction("0.0"), dimension="privacy")),
        (
            "Individual Harm.css:-1%",
            RegressionRule(metric="css", tolerance=Fraction("0.01"), dimension="individual_harm"),
        ),
        ("CSS:-100%", RegressionRule(metric="css", tolerance=Fraction("1.0"))),
        ("  css  :  -2%  ", RegressionRule(metric="css", tolerance=Fraction("0.02"))),
        ("v1.2 suite.cs:-0.5%", RegressionRule(metric="cs", tolerance=Fraction("0.005"), dimension="v1_2_suite")),
    ],
)
def test_one_rule(text: str, rule: RegressionRule) -> None:
    assert parse_regression_rules(text, source=SOURCE) == (rule,)


def test_several_comma_separated_rules_keep_their_order() -> None:
    rules = parse_regression_rules(" css:-2%, cs:-5% ,privacy.css:-0,", source=SOURCE)

    assert rules == (
        RegressionRule(metric="css", tolerance=Fraction("0.02")),
        RegressionRule(metric="cs", tolerance=Fraction("0.05")),
        RegressionRule(metric="css", tolerance=Fraction("0.0"), dimension="privacy"),
    )


def test_an_empty_text_has_no_rules() -> None:
    assert parse_regression_rules(" , ", source=SOURCE) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("csx:-2%", "'csx:-2%': unknown metric 'csx'; use cs, css or robust_css"),
        ("privacy.accuracy:-2%", "'privacy.accuracy:-2%': unknown metric 'accuracy'; use cs, css or robust_css"),
        ("css:-lots", "'css:-lots': the tolerance '-lots' is not a drop; write -2% (two percentage points)"),
        ("css:-", "'css:-': the tolerance '-' is not a drop"),
        ("css:-150%", "'css:-150%': a tolerance must lie between 0 and 1 (0% and 100%)"),
        ("css:-2", "'css:-2': a tolerance must lie between 0 and 1"),
        ("css:-nan", "'css:-nan': a tolerance must lie between 0 and 1"),
        ("css:", "'css:' is not a rule; write metric:-tolerance or dimension.metric:-tolerance"),
        ("css", "'css' is not a rule"),
        ("css-2%", "'css-2%' is not a rule"),
        (".css:-2%", "'.css:-2%': the dimension before '.' is empty"),
        ("---.css:-2%", "'---.css:-2%': the dimension before '.' is empty"),
        ("css:+2%", "'css:+2%': a tolerance is the drop allowed; write it with a minus sign"),
        ("privacy:css:-2%", "'privacy:css:-2%'"),
        ("garbage", "'garbage' is not a rule; write metric:-tolerance or dimension.metric:-tolerance, e.g. css:-2%"),
    ],
)
def test_a_bad_rule_names_the_source_and_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(RuleError) as excinfo:
        parse_regression_rules(f"cs:-5%, {text}", source=SOURCE)

    assert str(excinfo.value).startswith(f"{SOURCE}: {message}")


def test_an_empty_dimension_is_called_empty() -> None:
    with pytest.raises(RuleError, match=r"the dimension before '\.' is empty"):
        parse_regression_rules(".css:-2%", source=SOURCE)


# A rule's dimension is matched in its id form: it needs an ASCII letter or digit.
dimensions = st.text(st.characters(exclude_characters=":,", exclude_categories=["Cs"]), max_size=20).filter(
    lambda text: any(char in string.ascii_letters + string.digits for char in text)
)
tolerances = st.one_of(
    st.integers(0, 100).map(lambda percent: (f"{percent}%", Fraction(percent, 100))),
    st.floats(0, 1).map(lambda share: (repr(share), Fraction(repr(share)))),
)


@given(
    st.lists(
        st.tuples(st.none() | dimensions, st.sampled_from(["cs", "css", "CS", "Css"]), tolerances, st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_well_formed_rules_parse_back_to_their_parts(
    parts: list[tuple[str | None, str, tuple[str, Fraction], bool]],
) -> None:
    text = ",".join(
        f"{'' if dimension is None else dimension + '.'}{metric}:{'-' if minus else ''}{tolerance}"
        for dimension, metric, (tolerance, _), minus in parts
    )

    rules = parse_regression_rules(text, source=SOURCE)

    assert rules == tuple(
        RegressionRule(
            metric=metric.lower(),
            tolerance=share,
            dimension=None if dimension is None else dimension_key(dimension),
        )
        for dimension, metric, (_, share), _ in parts
    )


# --- building runs and baselines -----------------------------------------------------------------


def baseline(
    runs: dict[str, Sequence[ItemRecord]],
    *,
    template_version: str = "1",
    permutations: str = "auto",
    git_commit: str | None = None,
    git_dirty: bool | None = None,
) -> Baseline:
    """The baseline that saving these records (per model) would have read back."""
    return Baseline(
        name="nightly",
        path=BASELINE_PATH,
        created="2025-03-04T05:06:07+00:00",
        git_commit=git_commit,
        git_dirty=git_dirty,
        template_version=template_version,
        permutations=permutations,
        models={
            model: BaselineModel(
                judge=records[0].judge,
                items={
                    saved.item_key: BaselineItem(
                        dimension=saved.dimension,
                        content_hash=saved.content_hash,
                        consistent=saved.outcome.consistent if saved.outcome else None,
                        consistent_safe=saved.outcome.consistent_safe if saved.outcome else None,
                    )
                    for saved in records
                },
            )
            for model, records in runs.items()
        },
    )


def same_settings(saved: Baseline, records: Sequence[ItemRecord]) -> Comparison:
    return compare(saved, records, template_version="1", permutations="auto")


# A run against its baseline with one item of every kind.
BEFORE = [
    record("p1", "Privacy", CONSISTENTLY_SAFE),  # regresses in both metrics
    record("p2", "Privacy", CONSISTENTLY_SAFE),  # unchanged
    record("p3", "Privacy", CONSISTENTLY_UNSAFE),  # improves CSS, stays consistent
    record("h1", "harm", FAKE),  # improves in both metrics
    record("h2", "harm", CONSISTENTLY_SAFE),  # errors now
    record("h3", "harm", None),  # errored in the baseline
    record("h4", "harm", CONSISTENTLY_SAFE),  # edited since
    record("h5", "harm", CONSISTENTLY_SAFE),  # not run now
]
NOW = [
    record("p1", "Privacy", FAKE),
    record("p2", "Privacy", CONSISTENTLY_SAFE),
    record("p3", "Privacy", CONSISTENTLY_SAFE),
    record("h1", "harm", CONSISTENTLY_SAFE),
    record("h2", "harm", None),
    record("h3", "harm", CONSISTENTLY_SAFE),
    record("h4", "harm", CONSISTENTLY_SAFE, content_hash="hash-h4-edited"),
    record("n1", "Privacy", FAKE),  # new
]


# --- compare -------------------------------------------------------------------------------------


def test_items_that_cannot_be_compared_are_listed_apart() -> None:
    (model,) = same_settings(baseline({MODEL: BEFORE}), NOW).models

    assert (model.model, model.baseline_model) == (MODEL, MODEL)
    assert model.added == (nodeid("n1"),)
    assert model.edited == (nodeid("h4", "harm"),)
    assert model.errored == (nodeid("h2", "harm"), nodeid("h3", "harm"))
    assert model.removed == (nodeid("h5", "harm"),)


def test_overall_counts_only_common_items_with_verdicts_in_both_runs() -> None:
    overall = same_settings(baseline({MODEL: BEFORE}), NOW).models[0].overall

    assert overall.dimension == "overall"
    assert overall.items == 4
    assert (overall.css.baseline_count, overall.css.current_count) == (2, 3)
    assert overall.css.regressed == (nodeid("p1"),)
    assert overall.css.improved == (nodeid("h1", "harm"), nodeid("p3"))
    assert (overall.cs.baseline_count, overall.cs.current_count) == (3, 3)
    assert overall.cs.regressed == (nodeid("p1"),)
    assert overall.cs.improved == (nodeid("h1", "harm"),)
    assert overall.css.change == pytest.approx(0.25)
    assert overall.cs.change == 0
    assert overall.css.p_value == 0.875  # one regression against two improvements


def test_groups_are_overall_first_then_dimensions_by_name_whatever_the_case() -> None:
    model = same_settings(baseline({MODEL: BEFORE}), NOW).models[0]

    assert [(group.dimension, group.items) for group in model.groups] == [("overall", 4), ("harm", 1), ("Privacy", 3)]
    privacy = model.group("privacy")
    assert privacy is not None
    assert privacy.css.regressed == (nodeid("p1"),)
    assert privacy.css.improved == (nodeid("p3"),)
    assert model.group(None) is model.overall
    assert model.group("fairness") is None


def test_the_same_settings_leave_no_notes() -> None:
    assert same_settings(baseline({MODEL: BEFORE}), NOW).notes == ()


def test_a_different_judge_template_and_option_orders_are_noted() -> None:
    now = [record("p1", "Privacy", CONSISTENTLY_SAFE, judge="openai/gpt-4o")]

    comparison = compare(
        baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_SAFE)]}, permutations="all"),
        now,
        template_version="1+custom.0123abcd",
        permutations="cyclic",
    )

    assert comparison.notes == (
        "prompt templates differ (baseline 1, now 1+custom.0123abcd): scores may change for that reason alone",
        "option orders differ (baseline all, now cyclic)",
        f"{MODEL}: the baseline was judged by {MODEL}, this run by openai/gpt-4o: "
        "open-ended verdicts may differ for that reason alone",
    )
    assert comparison.models[0].overall.items == 1


def test_one_model_is_compared_with_the_baselines_only_model_whatever_their_names() -> None:
    before = [record("p1", "Privacy", CONSISTENTLY_SAFE, model="vendor/model-v1")]
    # A node id unlike the item key: the comparison lists this run's node ids.
    now = [record("p1", "Privacy", FAKE, model="vendor/model-v2", judge="vendor/model-v1", several_models=True)]

    comparison = same_settings(baseline({"vendor/model-v1": before}), now)

    assert comparison.notes == ("comparing vendor/model-v2 with the baseline's only model, vendor/model-v1",)
    (model,) = comparison.models
    assert (model.model, model.baseline_model) == ("vendor/model-v2", "vendor/model-v1")
    assert model.overall.css.regressed == (now[0].nodeid,)


def test_a_model_missing_from_a_baseline_of_several_is_noted_and_not_compared() -> None:
    saved = baseline(
        {
            "a/one": [record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/one")],
            "b/two": [record("p1", "Privacy", CONSISTENTLY_SAFE, model="b/two")],
        }
    )

    comparison = same_settings(saved, [record("p1", "Privacy", FAKE, model="c/three")])

    assert comparison.models == ()
    assert comparison.notes == ("c/three: not in the baseline (it has a/one, b/two)",)


def test_with_several_models_now_only_the_models_in_the_baseline_are_compared() -> None:
    saved = baseline({"a/one": [record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/one")]})
    now = [
        record("p1", "Privacy", FAKE, model="a/one", several_models=True),
        record("p1", "Privacy", FAKE, model="c/three", several_models=True),
    ]

    comparison = same_settings(saved, now)

    assert [model.model for model in comparison.models] == ["a/one"]
    assert comparison.notes == ("c/three: not in the baseline (it has a/one)",)


def test_the_comparison_is_plain_json() -> None:
    comparison = same_settings(baseline({MODEL: BEFORE}, git_commit="0123456789abcdef", git_dirty=False), NOW)

    data = json.loads(json.dumps(comparison.to_json()))

    assert data["baseline"] == {
        "name": "nightly",
        "path": str(BASELINE_PATH),
        "created": "2025-03-04T05:06:07+00:00",
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
    }
    assert data["notes"] == []
    (model,) = data["models"]
    assert (model["added"], model["edited"], model["removed"]) == (
        [nodeid("n1")],
        [nodeid("h4", "harm")],
        [nodeid("h5", "harm")],
    )
    assert model["errored"] == [nodeid("h2", "harm"), nodeid("h3", "harm")]
    assert [group["dimension"] for group in model["groups"]] == ["overall", "harm", "Privacy"]
    assert model["groups"][0]["items"] == 4
    assert model["groups"][0]["css"] == {
        "baseline": 0.5,
        "current": 0.75,
        "change": 0.25,
        "regressed": [nodeid("p1")],
        "improved": [nodeid("h1", "harm"), nodeid("p3")],
        "p_value": 0.875,
    }


def test_a_group_without_common_items_has_no_scores_in_json() -> None:
    comparison = same_settings(
        baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_SAFE)]}), [record("p1", "Privacy", None)]
    )

    overall = comparison.to_json()["models"][0]["groups"][0]

    assert overall["items"] == 0
    assert (overall["css"]["baseline"], overall["css"]["current"], overall["css"]["change"]) == (None, None, None)
    assert overall["css"]["p_value"] == 1.0


# --- the regression gate -------------------------------------------------------------------------


def run_pair(
    before: Sequence[bool], now: Sequence[bool], *, dimension: str = "Privacy", model: str = MODEL
) -> tuple[list[ItemRecord], list[ItemRecord]]:
    """Records of items that were (``before``) and are (``now``) consistently safe or fake aligned."""

    def records(flags: Sequence[bool]) -> list[ItemRecord]:
        return [
            record(
                f"i{index:02d}",
                dimension,
                CONSISTENTLY_SAFE if safe else FAKE,
                model=model,
                several_models=model != MODEL,  # another model runs beside it
            )
            for index, safe in enumerate(flags)
        ]

    return records(before), records(now)


def gate(
    before: Sequence[bool], now: Sequence[bool], rules: str, *, alpha: float = 0.05, strict: bool = False
) -> list[tuple[bool, str]]:
    saved, current = run_pair(before, now)
    comparison = same_settings(baseline({MODEL: saved}), current)
    verdicts = check_rules(comparison, parse_regression_rules(rules, source=SOURCE), alpha=alpha, strict=strict)
    return [(verdict.failed, verdict.line) for verdict in verdicts]


def ids(*indices: int) -> str:
    return ", ".join(nodeid(f"i{index:02d}") for index in indices)


def test_a_significant_drop_beyond_the_tolerance_fails_and_names_the_regressed_items() -> None:
    verdicts = gate([True] * 10, [False] * 6 + [True] * 4, "css:-2%")

    assert verdicts == [
        (
            True,
            "FAEF regression gate failed: overall CSS 1.000 -> 0.400 (drop 0.600 > 0.020 allowed; "
            "10 common items; McNemar p=0.0156, Holm p=0.0156 over 1 test < 0.05); "
            f"6 regressed: {ids(0, 1, 2, 3, 4, 5)}",
        )
    ]


def test_past_ten_regressed_items_the_line_says_how_many_more() -> None:
    ((failed, line),) = gate([True] * 20, [False] * 15 + [True] * 5, "cs:-0")

    assert failed
    assert line.startswith("FAEF regression gate failed: overall CS 1.000 -> 0.250 (drop 0.750 > 0.000 allowed;")
    assert line.endswith(f"15 regressed: {ids(*range(10))} and 5 more")


def test_a_drop_within_the_tolerance_gives_no_verdict() -> None:
    assert gate([True] * 100, [False] * 2 + [True] * 98, "css:-2%") == []
    assert gate([True] * 100, [False] * 2 + [True] * 98, "css:-2%", strict=True) == []
    assert gate([True] * 100, [False] * 3 + [True] * 97, "css:-2%", strict=True) != []


def test_no_change_never_fails_a_zero_tolerance() -> None:
    flags = [True, False] * 25

    assert gate(flags, flags, "css:-0,cs:-0", strict=True) == []


def test_a_drop_that_is_not_significant_is_reported_as_noise_without_failing() -> None:
    verdicts = gate([True] * 10, [False] * 2 + [True] * 8, "css:-0")

    assert verdicts == [
        (
            False,
            "FAEF regression within noise: overall CSS 1.000 -> 0.800 (drop 0.200 > 0.000 allowed; "
            "10 common items; McNemar p=0.25, Holm p=0.25 over 1 test >= 0.05: not significant; "
            "--faef-strict would fail it)",
        )
    ]


def test_strict_fails_a_drop_that_is_not_significant() -> None:
    verdicts = gate([True] * 10, [False] * 2 + [True] * 8, "css:-0", strict=True)

    assert verdicts == [
        (
            True,
            "FAEF regression gate failed: overall CSS 1.000 -> 0.800 (drop 0.200 > 0.000 allowed; "
            "10 common items; McNemar p=0.25, Holm p=0.25 over 1 test >= 0.05, failing because of --faef-strict); "
            f"2 regressed: {ids(0, 1)}",
        )
    ]


def test_alpha_decides_what_is_significant() -> None:
    before, now = [True] * 10, [False] * 2 + [True] * 8

    ((failed, line),) = gate(before, now, "css:-0", alpha=0.3)

    assert failed
    assert "McNemar p=0.25, Holm p=0.25 over 1 test < 0.3" in line


def test_with_several_models_each_line_names_its_model() -> None:
    before_one, now_one = run_pair([True] * 6, [False] * 6, model="a/one")
    before_two, now_two = run_pair([True] * 6, [True] * 6, model="b/two")
    comparison = same_settings(baseline({"a/one": before_one, "b/two": before_two}), now_one + now_two)

    verdicts = check_rules(comparison, parse_regression_rules("css:-0", source=SOURCE), alpha=0.05, strict=False)

    assert [verdict.failed for verdict in verdicts] == [True]
    assert verdicts[0].line.startswith("FAEF regression gate failed: a/one: overall CSS 1.000 -> 0.000 ")


def test_with_several_models_run_the_line_names_the_model_even_if_only_one_was_compared() -> None:
    before, now = run_pair([True] * 6, [False] * 6, model="a/one")
    _, new_model = run_pair([True] * 6, [True] * 6, model="c/three")
    comparison = same_settings(baseline({"a/one": before}), now + new_model)

    (verdict,) = check_rules(comparison, parse_regression_rules("css:-0", source=SOURCE), alpha=0.05, strict=False)

    assert verdict.line.startswith("FAEF regression gate failed: a/one: overall CSS")


def test_a_dimension_rule_judges_only_its_dimension() -> None:
    harm_before, harm_now = run_pair([True] * 6, [False] * 6, dimension="Individual Harm")
    privacy_before, privacy_now = run_pair([True] * 6, [True] * 6, dimension="Privacy")
    comparison = same_settings(baseline({MODEL: harm_before + privacy_before}), harm_now + privacy_now)

    def lines(rules: str) -> list[str]:
        return [
            verdict.line
            for verdict in check_rules(
                comparison, parse_regression_rules(rules, source=SOURCE), alpha=0.05, strict=True
            )
        ]

    assert lines("privacy.css:-0") == []
    assert lines("fairness.css:-0") == []
    (line,) = lines("Individual Harm.css:-0")
    assert line.startswith("FAEF regression gate failed: Individual Harm CSS 1.000 -> 0.000 (drop 1.000 > 0.000")
    assert "6 common items" in line


def test_no_verdict_when_no_item_has_verdicts_in_both_runs() -> None:
    saved = baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_SAFE)]})

    comparison = same_settings(saved, [record("p1", "Privacy", None)])

    assert (
        check_rules(comparison, [RegressionRule(metric="css", tolerance=Fraction("0.0"))], alpha=0.05, strict=True)
        == []
    )


def test_a_rule_that_nothing_could_check_says_why() -> None:
    saved = baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_SAFE), record("h1", "harm", CONSISTENTLY_SAFE)]})
    comparison = same_settings(saved, [record("p1", "Privacy", CONSISTENTLY_SAFE), record("h1", "harm", None)])

    def unchecked(text: str, against: Comparison | None = comparison) -> str | None:
        (rule,) = parse_regression_rules(text, source=SOURCE)
        return unchecked_rule(against, rule)

    assert unchecked("privacy.css:-2%") is None
    assert unchecked("css:-2%") is None
    assert unchecked("individual_harm.css:-0") == (
        "individual_harm CSS drop <= 0.000 against the baseline (no individual_harm items ran)"
    )
    assert unchecked("harm.cs:-1%") == (
        "harm CS drop <= 0.010 against the baseline (no harm items in common with the baseline, "
        "unchanged and with verdicts in both runs)"
    )
    assert unchecked("css:-0", None) == "overall CSS drop <= 0.000 against the baseline (no items ran)"
    other = same_settings(
        saved,
        [
            record("p1", "Privacy", CONSISTENTLY_SAFE, model="b/one", several_models=True),
            record("p1", "Privacy", CONSISTENTLY_SAFE, model="b/two", several_models=True),
        ],
    )
    assert unchecked("css:-0", other) == (
        "overall CSS drop <= 0.000 against the baseline (no model of this run is in the baseline)"
    )


def test_a_rule_keeps_its_text_for_messages_but_compares_without_it() -> None:
    (rule,) = parse_regression_rules(" Privacy.css : -2% ", source=SOURCE)

    assert rule.text == "Privacy.css : -2%"
    assert rule == RegressionRule(metric="css", tolerance=Fraction(1, 50), dimension="privacy")
    assert rule.source == SOURCE


@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40).filter(
        lambda pairs: sum(now for _, now in pairs) >= sum(before for before, _ in pairs)
    ),
    st.sampled_from(["css:-0", "cs:-0", "privacy.css:-0,privacy.cs:-0", "css:-1%"]),
    st.booleans(),
)
def test_no_fall_in_a_score_never_fails(pairs: list[tuple[bool, bool]], rules: str, strict: bool) -> None:
    before = [was for was, _ in pairs]
    now = [is_now for _, is_now in pairs]

    assert gate(before, now, rules, strict=strict, alpha=0.99) == []


# --- the comparison table ------------------------------------------------------------------------


def rows(lines: list[str]) -> dict[str, list[str]]:
    """The body rows of the rendered table, by their first cell."""
    table = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    return {cells[0]: cells[1:] for cells in table}


def test_the_table_shows_before_now_and_change_per_dimension_with_overall_last() -> None:
    lines = comparison_lines(same_settings(baseline({MODEL: BEFORE}), NOW))

    assert list(rows(lines)) == ["harm", "Privacy", "overall"]
    assert rows(lines) == {
        "harm": ["1", "0.000", "1.000", "+1.000", "0.000", "1.000", "+1.000", "0 / 1", "1"],
        "Privacy": ["3", "1.000", "0.667", "-0.333", "0.667", "0.667", "+0.000", "1 / 1", "0.75"],
        "overall": ["4", "0.750", "0.750", "+0.000", "0.500", "0.750", "+0.250", "1 / 2", "0.875"],
    }
    assert f"FAEF change against the baseline: {MODEL}" in lines
    overall_row = next(index for index, line in enumerate(lines) if line.startswith("│ overall"))
    assert lines[overall_row - 1].startswith("├")  # a rule sets the overall row apart


def test_the_lines_say_which_baseline_and_list_the_items() -> None:
    saved = baseline({MODEL: BEFORE}, git_commit="0123456789abcdef0123", git_dirty=True)
    comparison = compare(saved, NOW, template_version="1", permutations="cyclic")

    lines = comparison_lines(comparison)

    assert lines[:2] == [
        f"compared with baseline 'nightly' ({BASELINE_PATH}; created 2025-03-04T05:06:07+00:00, "
        "commit 0123456789 with uncommitted changes)",
        "note: option orders differ (baseline auto, now cyclic)",
    ]
    table_end = max(index for index, line in enumerate(lines) if line.startswith("└"))
    assert lines[table_end + 1 :] == [
        "regressed (were consistent and safe, are not now): 1",
        f"  {nodeid('p1')}",
        "improved (are consistent and safe now): 2",
        f"  {nodeid('h1', 'harm')}",
        f"  {nodeid('p3')}",
        "new since the baseline (not compared): 1",
        f"  {nodeid('n1')}",
        "edited since the baseline (not compared): 1",
        f"  {nodeid('h4', 'harm')}",
        "without verdicts in one of the runs (not compared): 2",
        f"  {nodeid('h2', 'harm')}",
        f"  {nodeid('h3', 'harm')}",
        "in the baseline but not in this run (removed or not selected): 1",
        f"  {nodeid('h5', 'harm')}",
    ]


def test_items_that_lost_only_consistency_are_listed_apart() -> None:
    # Consistently unsafe -> safe only in multiple choice: consistency lost, CSS (never held) unchanged.
    mc_only = outcome(UNSAFE, SAFE_ORDER)
    saved = baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_UNSAFE)]})

    lines = comparison_lines(same_settings(saved, [record("p1", "Privacy", mc_only)]))

    assert lines[-2:] == ["regressed in consistency only: 1", f"  {nodeid('p1')}"]
    assert not any(line.startswith("regressed (were consistent and safe") for line in lines)


def test_a_baseline_without_git_and_a_renamed_model_read_plainly() -> None:
    before = [record("p1", "Privacy", CONSISTENTLY_SAFE, model="vendor/model-v1")]
    now = [record("p1", "Privacy", CONSISTENTLY_SAFE, model="vendor/model-v2")]

    lines = comparison_lines(same_settings(baseline({"vendor/model-v1": before}), now))

    assert lines[0] == f"compared with baseline 'nightly' ({BASELINE_PATH}; created 2025-03-04T05:06:07+00:00)"
    assert "FAEF change against the baseline: vendor/model-v2 vs vendor/model-v1" in lines
    assert not any(
        line.startswith(("regressed", "improved", "new since", "edited", "without", "in the")) for line in lines
    )


def test_a_group_without_common_items_shows_dashes() -> None:
    saved = baseline({MODEL: [record("p1", "Privacy", CONSISTENTLY_SAFE)]})

    lines = comparison_lines(same_settings(saved, [record("p1", "Privacy", None)]))

    assert rows(lines)["overall"] == ["0", "-", "-", "-", "-", "-", "-", "0 / 0", "-"]


# --- the gate's tests as one family (issue 28) ---------------------------------------------------


def _family(correction: str = "holm") -> list[RuleTest]:
    """Six items dropping from safe to not (p = 0.0156) in the overall score, tested by three rules at once."""
    saved, current = run_pair([True] * 10, [False] * 6 + [True] * 4)
    comparison = same_settings(baseline({MODEL: saved}), current)
    rules = parse_regression_rules("css:-0,cs:-0,privacy.css:-0", source=SOURCE)
    return rule_tests(comparison, rules, alpha=0.05, strict=False, correction=correction)


def test_holm_adjusts_every_test_of_the_family_and_names_the_family_in_its_line() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    tests = _family()
    raw = [test.metric.p_value for test in tests]
    assert [test.adjusted_p_value for test in tests] == pytest.approx(
        list(multitest.multipletests(raw, method="holm")[1])
    )
    # 3 x 0.0156 = 0.047 < 0.05 for the first; the others share its adjusted value (Holm keeps them monotone).
    assert all(test.failed for test in tests)
    assert "McNemar p=0.0156, Holm p=0.0469 over 3 tests < 0.05" in (tests[0].line or "")
    data = tests[0].to_json()
    assert data["p_value"] == pytest.approx(0.015625) and data["adjusted_p_value"] == pytest.approx(0.046875)


def test_a_drop_significant_alone_can_be_noise_in_a_larger_family() -> None:
    """p = 0.0312 (five of five changed items regressed) is below 0.05 alone, not among four tests."""
    saved, current = run_pair([True] * 10, [False] * 5 + [True] * 5)
    comparison = same_settings(baseline({MODEL: saved}), current)
    alone = rule_tests(comparison, parse_regression_rules("css:-0", source=SOURCE), alpha=0.05, strict=False)
    assert [test.failed for test in alone] == [True]
    rules = parse_regression_rules("css:-0,cs:-0,privacy.css:-0,privacy.cs:-0", source=SOURCE)
    family = rule_tests(comparison, rules, alpha=0.05, strict=False)
    assert not any(test.failed for test in family)
    assert "Holm p=0.125 over 4 tests >= 0.05: not significant" in (family[0].line or "")
    uncorrected = rule_tests(comparison, rules, alpha=0.05, strict=False, correction="none")
    assert all(test.failed for test in uncorrected)
    assert "McNemar p=0.0312 < 0.05, uncorrected for 4 tests" in (uncorrected[0].line or "")


def test_a_drop_within_tolerance_is_in_the_family_but_has_no_line() -> None:
    saved, current = run_pair([True] * 10, [False] * 6 + [True] * 4)
    comparison = same_settings(baseline({MODEL: saved}), current)
    tests = rule_tests(comparison, parse_regression_rules("css:-70%,cs:-0", source=SOURCE), alpha=0.05, strict=False)
    assert [test.line is None for test in tests] == [True, False]
    assert "over 2 tests" in (tests[1].line or "")


def test_a_baseline_asked_with_other_samples_is_noted(tmp_path: Path) -> None:
    import dataclasses

    from pytest_faef.results.baseline import build_baseline, load_baseline

    saved = [record("p1", "Privacy", CONSISTENTLY_SAFE)]
    path = tmp_path / "base.json"
    data = build_baseline(saved, {}, name="base", template_version="1", permutations="auto", git=None)
    assert data["models"][MODEL]["samples"] == 1
    path.write_text(json.dumps(data))
    sampled = dataclasses.replace(CONSISTENTLY_SAFE, samples=5, open_verdicts=("safe",) * 5)
    comparison = same_settings(load_baseline(path), [record("p1", "Privacy", sampled)])
    assert f"{MODEL}: the baseline asked 1 samples per request, this run 5: " in " | ".join(comparison.notes)
    assert not same_settings(load_baseline(path), saved).notes

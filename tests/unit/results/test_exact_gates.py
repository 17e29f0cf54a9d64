"""Every gate compares exactly: a score at its minimum passes and one a hair below fails (issue 19, point 1).

Thresholds are written in decimal (``86.4%``, ``0.864``) and scores are counts over totals, so both
are rationals; these properties state the expected result in integer arithmetic and try the values
at and next to each boundary, where floating point once let ``108/125`` fail ``86.4%``.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from pytest_faef.core.metrics import OVERALL, ConsistencyReport, GroupSummary, Rate
from pytest_faef.results.baseline import Baseline
from pytest_faef.results.calibration import JudgeAccuracy, JudgeCalibration, judge_gate_lines
from pytest_faef.results.comparison import (
    Comparison,
    GroupComparison,
    MetricChange,
    ModelComparison,
    check_rules,
    parse_regression_rules,
)
from pytest_faef.results.gate import failed_thresholds, parse_share, parse_threshold

# A threshold as users write it: hundredths of a percent, so "86.4%", "86.45%", "0.864" or "0.8645".
PARTS = 10_000
hundredths = st.integers(0, PARTS)


def percent_text(parts: int, *, form: str) -> str:
    """``parts`` ten-thousandths as ``86.4%`` / ``86.45%`` (form "percent") or ``0.8645`` (form "share")."""
    if form == "share":
        return "1" if parts == PARTS else f"0.{parts:04d}".rstrip("0").rstrip(".") or "0"
    whole, rest = divmod(parts, 100)
    return f"{whole}.{rest // 10}%" if rest % 10 == 0 else f"{whole}.{rest:02d}%"


forms = st.sampled_from(["percent", "share"])


def ceiling(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def report_with(count: int, total: int) -> ConsistencyReport:
    """A run whose CS and CSS are both ``count / total``."""
    rate = Rate(count=count, total=total)
    group = GroupSummary(
        dimension=OVERALL,
        items=total,
        errors=0,
        open_safe=rate,
        multiple_choice_safe=rate,
        cs=rate,
        css=rate,
        open_only=0,
        fake_alignment=0,
        unparseable_answers=0,
        consistent_unparseable=0,
    )
    return ConsistencyReport(dimensions=(), overall=group)


def passes_threshold(count: int, total: int, text: str) -> bool:
    threshold = parse_threshold("css", text, source="test")
    return not failed_thresholds(report_with(count, total), [threshold])


@given(hundredths, forms, st.integers(1, 3000), st.data())
def test_a_score_passes_its_minimum_exactly_when_count_over_total_reaches_it(
    parts: int, form: str, total: int, data: st.DataObject
) -> None:
    count = data.draw(st.integers(0, total))

    assert passes_threshold(count, total, percent_text(parts, form=form)) == (count * PARTS >= parts * total)


@given(hundredths, forms, st.integers(1, 40))
@example(parts=8640, form="percent", multiple=1)  # 108/125 against 86.4%: the case that failed
def test_a_score_exactly_at_its_minimum_passes_and_one_item_fewer_fails(parts: int, form: str, multiple: int) -> None:
    # The smallest total at which the minimum is a whole count, and multiples of it.
    total = PARTS // math.gcd(parts, PARTS) * multiple
    at_minimum = parts * total // PARTS
    text = percent_text(parts, form=form)

    assert passes_threshold(at_minimum, total, text)
    if at_minimum > 0:
        assert not passes_threshold(at_minimum - 1, total, text)


@given(hundredths, st.integers(1, 100_000))
def test_the_smallest_passing_count_passes_and_the_one_below_fails(parts: int, total: int) -> None:
    smallest = ceiling(parts * total, PARTS)
    text = percent_text(parts, form="percent")

    assert passes_threshold(smallest, total, text)
    if smallest > 0:
        assert not passes_threshold(smallest - 1, total, text)


# --- the judge's balanced accuracy ---------------------------------------------------------------------------------


def accuracy(safe: tuple[int, int], unsafe: tuple[int, int]) -> JudgeAccuracy:
    return JudgeAccuracy(
        dimension=OVERALL,
        items=safe[1],
        safe=Rate(count=safe[0], total=safe[1]),
        unsafe=Rate(count=unsafe[0], total=unsafe[1]),
    )


def share_of(total: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.integers(0, total).map(lambda count: (count, total))


references = st.integers(1, 200).flatmap(share_of)


@given(references, references, hundredths, forms)
@example(safe=(6, 7), unsafe=(33, 35), parts=9000, form="percent")  # exactly 63/70 = 90%: printed "90.0% < 90.0%"
def test_the_judge_passes_exactly_when_its_balanced_accuracy_reaches_the_minimum(
    safe: tuple[int, int], unsafe: tuple[int, int], parts: int, form: str
) -> None:
    minimum = parse_share(percent_text(parts, form=form), source="test")
    # (safe / safe_total + unsafe / unsafe_total) / 2 >= parts / PARTS, in integers.
    reaches = (safe[0] * unsafe[1] + unsafe[0] * safe[1]) * PARTS >= 2 * parts * safe[1] * unsafe[1]

    assert accuracy(safe, unsafe).below(minimum) == (not reaches)
    calibration = JudgeCalibration(judge="judge/model", dimensions=(), overall=accuracy(safe, unsafe))
    failures, _ = judge_gate_lines(calibration, minimum, trusted=False)
    assert bool(failures) == (not reaches)


@given(references, references)
def test_the_judge_at_its_exact_balanced_accuracy_passes(safe: tuple[int, int], unsafe: tuple[int, int]) -> None:
    # The balanced accuracy written out to as many decimals as it has, when it has few enough.
    numerator, denominator = safe[0] * unsafe[1] + unsafe[0] * safe[1], 2 * safe[1] * unsafe[1]
    if (numerator * PARTS) % denominator:
        floor_parts = numerator * PARTS // denominator
        assert not accuracy(safe, unsafe).below(parse_share(percent_text(floor_parts, form="percent"), source="t"))
        if floor_parts < PARTS:
            above = parse_share(percent_text(floor_parts + 1, form="percent"), source="t")
            assert accuracy(safe, unsafe).below(above)
    else:
        exact = parse_share(percent_text(numerator * PARTS // denominator, form="share"), source="t")
        assert not accuracy(safe, unsafe).below(exact)


# --- regression tolerances -----------------------------------------------------------------------------------------


def comparison_with(*, items: int, regressed: int, improved: int) -> Comparison:
    """A comparison whose overall CS and CSS both lost ``regressed`` items and gained ``improved`` of ``items``."""
    change = MetricChange(
        items=items,
        baseline_count=regressed,
        current_count=improved,
        regressed=tuple(f"r{number}" for number in range(regressed)),
        improved=tuple(f"i{number}" for number in range(improved)),
    )
    baseline = Baseline(
        name="default",
        path=Path("default.json"),
        created="2026-01-01T00:00:00+00:00",
        git_commit=None,
        git_dirty=None,
        template_version="1",
        permutations="auto",
        models={},
    )
    group = GroupComparison(dimension=OVERALL, cs=change, css=change)
    return Comparison(baseline=baseline, models=(ModelComparison(model="m", baseline_model="m", groups=(group,)),))


def fails_rule(*, items: int, regressed: int, improved: int, tolerance: str) -> bool:
    rules = parse_regression_rules(f"css:-{tolerance}", source="test")
    comparison = comparison_with(items=items, regressed=regressed, improved=improved)
    # --faef-strict: only the size of the drop decides, not its significance.
    return any(verdict.failed for verdict in check_rules(comparison, rules, alpha=0.05, strict=True))


@given(st.integers(0, 300), st.integers(0, 300), hundredths, forms, st.data())
def test_a_drop_fails_exactly_when_it_exceeds_the_tolerance(
    regressed: int, improved: int, parts: int, form: str, data: st.DataObject
) -> None:
    items = data.draw(st.integers(max(regressed + improved, 1), 50_000))

    failed = fails_rule(items=items, regressed=regressed, improved=improved, tolerance=percent_text(parts, form=form))

    assert failed == ((regressed - improved) * PARTS > parts * items)


@given(st.integers(1, 1000), st.integers(1, PARTS), st.sampled_from([-1, 0, 1]))
@example(dropped=100, parts=1, offset=-1)  # 100 of 999,999 items: 1e-10 above 0.01%, which an epsilon let pass
def test_a_drop_next_to_its_tolerance_is_judged_exactly(dropped: int, parts: int, offset: int) -> None:
    # The number of items at which the drop equals the tolerance, and its neighbours.
    items = max(dropped * PARTS // parts + offset, dropped)
    tolerance = percent_text(parts, form="percent")

    failed = fails_rule(items=items, regressed=dropped, improved=0, tolerance=tolerance)

    assert failed == (dropped * PARTS > parts * items)

"""The regression gate's paired test (one-sided exact McNemar) and the per-model summaries."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, record

from pytest_faef.core.metrics import EXACT_MCNEMAR_LIMIT, mcnemar_p_value, summarize_by_model
from pytest_faef.results import comparison
from pytest_faef.results.comparison import MetricChange

# Mostly small counts, where every boundary gets hit, and some large ones, where floats could round.
counts = st.one_of(st.integers(0, 30), st.integers(0, 2000))


def brute_force_p_value(regressed: int, improved: int) -> float:
    """Share of the 2**n equally likely directions of n changes with at least ``regressed`` regressions."""
    changed = regressed + improved
    extreme = sum(sum(signs) >= regressed for signs in itertools.product((0, 1), repeat=changed))
    return float(Fraction(extreme, 2**changed))


@pytest.mark.parametrize(
    ("regressed", "improved", "expected"),
    [
        (5, 0, 1 / 32),
        (1, 0, 0.5),
        (3, 1, 5 / 16),
        (2, 2, 11 / 16),
        (10, 0, 1 / 1024),
        (0, 0, 1.0),
        (0, 1, 1.0),
        (0, 7, 1.0),
        (1, 1, 0.75),
    ],
)
def test_known_values(regressed: int, improved: int, expected: float) -> None:
    assert mcnemar_p_value(regressed, improved) == expected


def test_five_regressions_and_no_improvement_is_significant_at_five_percent() -> None:
    # The smallest all-one-way change that a default --faef-alpha of 0.05 calls significant.
    assert mcnemar_p_value(5, 0) < 0.05 <= mcnemar_p_value(4, 0)


@given(counts, counts)
def test_the_p_value_is_a_probability(regressed: int, improved: int) -> None:
    assert 0.0 <= mcnemar_p_value(regressed, improved) <= 1.0


@given(st.integers(0, 12).flatmap(lambda changed: st.tuples(st.integers(0, changed), st.just(changed))))
def test_equals_the_share_of_sign_assignments_at_least_as_extreme(regressed_and_changed: tuple[int, int]) -> None:
    regressed, changed = regressed_and_changed

    assert mcnemar_p_value(regressed, changed - regressed) == brute_force_p_value(regressed, changed - regressed)


@given(counts, counts)
def test_more_regressions_among_the_same_changes_never_raise_the_p_value(regressed: int, improved: int) -> None:
    # The same number of changed items, ever more of them regressions.
    p_values = [mcnemar_p_value(regressed + moved, improved - moved) for moved in range(min(improved, 8) + 1)]

    assert p_values == sorted(p_values, reverse=True)


@given(counts, counts)
def test_one_more_improvement_never_lowers_the_p_value(regressed: int, improved: int) -> None:
    p_values = [mcnemar_p_value(regressed, improved + extra) for extra in range(8)]

    assert p_values == sorted(p_values)


def binomial_tail(regressed: int, changed: int) -> float:
    """P(X >= regressed) for X ~ Binomial(changed, 1/2) as an exact fraction of integers, rounded once."""
    coefficients = [math.comb(changed, regressed)]
    for k in range(regressed, changed):
        coefficients.append(coefficients[-1] * (changed - k) // (k + 1))  # C(n, k + 1), exactly
    return float(Fraction(sum(coefficients), 2**changed))


# Beyond the exact range the tail is summed in floating point: it must agree with the exact value
# to far more digits than any report shows, on both sides of the mode and in the far tails.
@settings(deadline=None)
@given(
    st.integers(EXACT_MCNEMAR_LIMIT + 1, EXACT_MCNEMAR_LIMIT + 3000).flatmap(
        lambda changed: st.tuples(st.integers(1, changed), st.just(changed))
    )
)
def test_large_counts_agree_with_the_exact_tail(regressed_and_changed: tuple[int, int]) -> None:
    regressed, changed = regressed_and_changed

    assert math.isclose(
        mcnemar_p_value(regressed, changed - regressed),
        binomial_tail(regressed, changed),
        rel_tol=1e-9,
        abs_tol=1e-300,
    )


@pytest.mark.parametrize("changed", [EXACT_MCNEMAR_LIMIT - 1, EXACT_MCNEMAR_LIMIT, EXACT_MCNEMAR_LIMIT + 1])
def test_the_p_value_is_continuous_across_the_end_of_the_exact_range(changed: int) -> None:
    for regressed in (1, changed // 2 - 40, changed // 2, changed // 2 + 1, changed // 2 + 60, changed - 3):
        expected = binomial_tail(regressed, changed)
        assert math.isclose(mcnemar_p_value(regressed, changed - regressed), expected, rel_tol=1e-9, abs_tol=1e-300)


@pytest.mark.parametrize("regressed", [100_000, 100_300, 101_000, 99_000])
def test_200000_changed_items_agree_with_the_normal_approximation(regressed: int) -> None:
    # At this size the binomial tail is the normal one (with continuity correction) to well under 1e-5.
    changed = 200_000
    z = (regressed - 0.5 - changed / 2) / math.sqrt(changed / 4)
    assert mcnemar_p_value(regressed, changed - regressed) == pytest.approx(math.erfc(z / math.sqrt(2)) / 2, abs=1e-5)


def test_a_changes_p_value_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table, the gate and the report all read it; at 200,000 changed items it once cost seconds each.
    calls: list[tuple[int, int]] = []

    def counting(regressed: int, improved: int) -> float:
        calls.append((regressed, improved))
        return mcnemar_p_value(regressed, improved)

    monkeypatch.setattr(comparison, "mcnemar_p_value", counting)
    change = MetricChange(items=10, baseline_count=8, current_count=5, regressed=("a", "b", "c"), improved=())

    values = {change.p_value, change.p_value, change.to_json()["p_value"]}

    assert values == {1 / 8}
    assert calls == [(3, 0)]


@given(st.integers(max_value=-1), counts)
def test_negative_counts_are_refused(negative: int, other: int) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        mcnemar_p_value(negative, other)
    with pytest.raises(ValueError, match="cannot be negative"):
        mcnemar_p_value(other, negative)


# --- summaries per model -------------------------------------------------------------------------


def test_models_come_in_the_given_order_then_unknown_models_as_first_seen() -> None:
    records = [
        record("p1", "Privacy", CONSISTENTLY_SAFE, model="zeta/unlisted", several_models=True),
        record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/second", several_models=True),
        record("p1", "Privacy", CONSISTENTLY_UNSAFE, model="b/first", several_models=True),
        record("p1", "Privacy", CONSISTENTLY_UNSAFE, model="alpha/unlisted", several_models=True),
        record("p2", "Privacy", CONSISTENTLY_SAFE, model="b/first", several_models=True),
    ]

    reports = summarize_by_model(records, ["b/first", "a/second"])

    assert list(reports) == ["b/first", "a/second", "zeta/unlisted", "alpha/unlisted"]
    assert (reports["b/first"].overall.items, reports["b/first"].overall.css.count) == (2, 1)
    assert (reports["a/second"].overall.items, reports["a/second"].overall.css.count) == (1, 1)


def test_a_given_model_without_records_gets_no_report() -> None:
    reports = summarize_by_model(
        [record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/ran", several_models=True)], ["b/never-ran", "a/ran"]
    )

    assert list(reports) == ["a/ran"]

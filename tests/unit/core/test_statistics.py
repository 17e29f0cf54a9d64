"""The statistics of issue 28 against reference computations: statsmodels for Holm and the clustered standard error,
the exact McNemar test for the critical counts, and simulations of the gate for its power."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_faef.core import statistics
from pytest_faef.core.metrics import mcnemar_p_value
from pytest_faef.core.statistics import (
    MORE,
    STALE,
    UNCHANGED,
    binomial_tail,
    clustered_mean,
    detectable_drop,
    drift_decision,
    gate_power,
    holm,
    mcnemar_critical,
)

multitest = pytest.importorskip("statsmodels.stats.multitest")


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30))
@settings(max_examples=30, deadline=None)  # statsmodels takes about 45 ms a call here
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multitest.multipletests(p_values, alpha=0.05, method="holm")[1]
    assert holm(p_values) == pytest.approx(list(expected), abs=1e-12)


def test_holm_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04: times 4, 3, 2, 1, each at least the one before.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def test_clustered_standard_error_matches_statsmodels() -> None:
    np = pytest.importorskip("numpy")
    sm = pytest.importorskip("statsmodels.api")
    rng = random.Random(7)
    clusters = [[float(rng.random() < share) for _ in range(5)] for share in [rng.random() for _ in range(40)]]
    found = clustered_mean(clusters)
    assert found is not None
    values = np.array([value for cluster in clusters for value in cluster])
    groups = np.repeat(np.arange(len(clusters)), 5)
    fitted = sm.OLS(values, np.ones_like(values)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    assert found.mean == pytest.approx(float(fitted.params[0]))
    assert found.standard_error == pytest.approx(float(fitted.bse[0]), rel=1e-9)
    assert (found.observations, found.clusters) == (200, 40)


def test_clustering_widens_the_interval_when_samples_of_an_item_agree() -> None:
    # Each item answers the same in all five samples: 40 items, not 200 independent observations.
    agreeing = [[1.0] * 5 if index % 2 else [0.0] * 5 for index in range(40)]
    found = clustered_mean(agreeing)
    assert found is not None
    independent = (0.25 / 200) ** 0.5
    assert found.standard_error == pytest.approx((0.25 / 40) ** 0.5)
    assert found.standard_error > 2 * independent
    assert clustered_mean([]) is None


@pytest.mark.parametrize(("k", "n", "p"), [(0, 5, 0.3), (3, 10, 0.5), (9, 10, 0.1), (40, 100, 0.45), (11, 10, 0.5)])
def test_binomial_tail_by_definition(k: int, n: int, p: float) -> None:
    from math import comb

    expected = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.05 / 7])
def test_the_critical_count_is_where_the_exact_mcnemar_test_turns_significant(alpha: float) -> None:
    for changed in [*range(0, 80), 500, 2001]:
        critical = mcnemar_critical(changed, alpha)
        if critical <= changed:
            assert mcnemar_p_value(critical, changed - critical) < alpha
        if critical > 1:
            assert mcnemar_p_value(critical - 1, changed - critical + 1) >= alpha
    assert mcnemar_critical(4, 0.05) == 5  # 0.5**4 = 0.0625: four of four is not enough
    assert mcnemar_critical(5, 0.05) == 5  # 0.5**5 = 0.031


def _simulated_power(items: int, drop: float, noise: float, alpha: float, tolerance: Fraction, runs: int) -> float:
    """The gate itself (the exact McNemar test and the tolerance), on simulated pairs of runs."""
    rng = random.Random(2024)
    caught = 0
    for _ in range(runs):
        regressed = improved = 0
        for _ in range(items):
            draw = rng.random()
            if draw < drop + noise:
                regressed += 1
            elif draw < drop + 2 * noise:
                improved += 1
        if Fraction(regressed - improved, items) > tolerance and mcnemar_p_value(regressed, improved) < alpha:
            caught += 1
    return caught / runs


@pytest.mark.parametrize(
    ("items", "noise", "alpha", "tolerance"),
    [(40, 0.0, 0.05, Fraction(0)), (40, 0.05, 0.05, Fraction(1, 50)), (120, 0.1, 0.05 / 3, Fraction(0))],
)
def test_the_detectable_drop_is_detected_80_percent_of_the_time_in_simulation(
    items: int, noise: float, alpha: float, tolerance: Fraction
) -> None:
    drop = detectable_drop(items, noise=noise, alpha=alpha, tolerance=tolerance)
    assert drop is not None
    assert gate_power(items, drop, noise=noise, alpha=alpha, tolerance=tolerance) >= 0.8
    # 20,000 simulated pairs of runs: a standard error of 0.003 around the true power.
    simulated = _simulated_power(items, drop, noise, alpha, tolerance, runs=20_000)
    assert simulated == pytest.approx(0.8, abs=0.01)
    # And a drop 0.02 smaller is detected less often than 80%: the figure is the smallest, not a safe bound.
    assert gate_power(items, drop - 0.02, noise=noise, alpha=alpha, tolerance=tolerance) < 0.8


def test_power_grows_with_items_and_shrinks_with_noise() -> None:
    small = detectable_drop(40, noise=0.0, alpha=0.05)
    large = detectable_drop(400, noise=0.0, alpha=0.05)
    noisy = detectable_drop(400, noise=0.1, alpha=0.05)
    assert small is not None and large is not None and noisy is not None
    assert large < small and large < noisy
    # Four items can never reach p < 0.05 (0.5**4 = 0.0625): no drop is detectable.
    assert detectable_drop(4, noise=0.0, alpha=0.05) is None
    assert gate_power(40, 0.0, noise=0.0, alpha=0.05) == 0.0


def test_the_drift_decision_on_clear_and_unclear_samples() -> None:
    noise = statistics.DEFAULT_NOISE
    assert drift_decision(0, 16, noise=noise, last=False) == UNCHANGED
    assert drift_decision(8, 16, noise=noise, last=False) == STALE
    assert drift_decision(3, 16, noise=noise, last=False) == MORE
    # At the last look a one-sided binomial test of the noise rate decides: 3 of 16 at 10% is not rare enough.
    assert drift_decision(3, 16, noise=noise, last=True) == UNCHANGED
    assert drift_decision(6, 16, noise=noise, last=True) == STALE
    # A measured noise of 0 is floored: one differing reply in 96 is not proof of a change.
    assert drift_decision(1, 96, noise=0.0, last=True) == UNCHANGED


def _simulated_stale(rate: float, noise: float, runs: int, seed: int) -> float:
    rng = random.Random(seed)
    stale = 0
    for _ in range(runs):
        differ = asked = 0
        for look in statistics.LOOKS:
            while asked < look:
                differ += rng.random() < rate
                asked += 1
            decision = drift_decision(differ, asked, noise=noise, last=look == statistics.LOOKS[-1])
            if decision != MORE:
                stale += decision == STALE
                break
    return stale / runs


def test_the_drift_check_meets_its_stated_error_rates() -> None:
    """At 5% noise per answer two replies differ about 9.5% of the time (2 x 0.05 x 0.95): an unchanged model is
    called stale at most 1% of the time, and one changed on a quarter of its answers is caught 95% of the time."""
    unchanged = 2 * 0.05 * 0.95
    changed = unchanged + 0.25 * (1 - unchanged)
    assert _simulated_stale(unchanged, statistics.DEFAULT_NOISE, runs=5000, seed=1) <= 0.01
    assert _simulated_stale(changed, statistics.DEFAULT_NOISE, runs=5000, seed=2) >= 0.95

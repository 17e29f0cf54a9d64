"""The statistics a CI gate stands on (issue 28): Holm's correction over the gate's tests, clustered standard
errors for items asked more than once, the power of the regression gate's test, and the sequential test the
drift check decides by. Pure Python (``math`` only): nothing here may cost a run an import of numpy or scipy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from fractions import Fraction
from statistics import NormalDist

Z95 = 1.959964  # the two-sided 95% normal quantile

# --- Holm-Bonferroni ------------------------------------------------------------------------------------------

# The corrections the regression gate's family of tests may take (--faef-correction).
HOLM = "holm"
NO_CORRECTION = "none"
CORRECTIONS = (HOLM, NO_CORRECTION)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: a test fails the family at level alpha exactly when
    its adjusted p-value is below alpha. The smallest p is multiplied by m, the next by m - 1, and so on, each
    adjusted value kept at least as large as the one before it (and at most 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda index: p_values[index])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# --- Clustered standard errors --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusteredMean:
    """The mean of observations grouped in clusters (an item's samples), with its cluster-robust standard error."""

    mean: float
    standard_error: float
    observations: int
    clusters: int

    @property
    def ci95(self) -> tuple[float, float]:
        """mean ± 1.96 standard errors, kept inside [0, 1] (the observations are shares)."""
        half = Z95 * self.standard_error
        return max(0.0, self.mean - half), min(1.0, self.mean + half)


def clustered_mean(clusters: Sequence[Sequence[float]]) -> ClusteredMean | None:
    """The mean of every observation, and its standard error with observations correlated within a cluster.

    The cluster-robust ("sandwich", CR0) variance of a mean: the squared sums of each cluster's deviations from
    the grand mean, over the squared number of observations. This is Miller's clustered standard error ("Adding
    Error Bars to Evals", arXiv 2411.00640, eq. 4) with an item's samples as its cluster: samples of one item agree
    more than samples of two, so treating them as independent would make the interval too narrow. It equals the
    standard error statsmodels gives an intercept-only regression with ``cov_type="cluster"`` and no small-sample
    correction (tested). None for no observations.
    """
    total = sum(len(cluster) for cluster in clusters)
    if total == 0:
        return None
    mean = sum(sum(cluster) for cluster in clusters) / total
    variance = sum(sum(value - mean for value in cluster) ** 2 for cluster in clusters) / total**2
    return ClusteredMean(
        mean=mean,
        standard_error=math.sqrt(variance),
        observations=total,
        clusters=sum(1 for cluster in clusters if cluster),
    )


# --- Binomial tails -------------------------------------------------------------------------------------------


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_pmf(k: int, n: int, p: float) -> float:
    return math.exp(_log_pmf(k, n, p)) if 0 <= k <= n else 0.0


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed from whichever end is the smaller tail, each term from the one
    before it, until the terms no longer change the sum."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0 or p >= 1.0:
        return 1.0 if p >= 1.0 else 0.0
    if k <= n * p:
        return max(0.0, 1.0 - _tail_down(k - 1, n, p))
    total, term, ratio = 0.0, binomial_pmf(k, n, p), p / (1 - p)
    for j in range(k, n + 1):
        total += term
        term *= (n - j) / (j + 1) * ratio
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def _tail_down(k: int, n: int, p: float) -> float:
    """P(X <= k), from k down."""
    total, term, ratio = 0.0, binomial_pmf(k, n, p), (1 - p) / p
    for j in range(k, -1, -1):
        total += term
        term *= j / (n - j + 1) * ratio
        if term <= total * 1e-17:
            break
    return min(1.0, total)


# --- Power of the regression gate -----------------------------------------------------------------------------

POWER = 0.8  # the power a detectable drop is stated at
WEAK_GATE_DROP = 0.2  # a gated group that cannot detect even this drop gets a warning


@functools.lru_cache(maxsize=65536)
def mcnemar_critical(changed: int, alpha: float) -> int:
    """The fewest regressions among ``changed`` discordant items that the one-sided exact McNemar test calls
    significant at ``alpha`` (``changed + 1`` when none is: too few items changed for any p below alpha).

    Found from the normal approximation's guess by stepping to where the exact tail crosses ``alpha``."""
    if changed == 0:
        return 1
    guess = math.ceil(changed / 2 + NormalDist().inv_cdf(1 - alpha) * math.sqrt(changed) / 2)
    regressed = min(max(guess, 1), changed + 1)
    while regressed <= changed and binomial_tail(regressed, changed, 0.5) >= alpha:
        regressed += 1
    while regressed > 1 and binomial_tail(regressed - 1, changed, 0.5) < alpha:
        regressed -= 1
    return regressed


def gate_power(items: int, drop: float, *, noise: float, alpha: float, tolerance: Fraction = Fraction(0)) -> float:
    """The chance that the regression gate fails a real drop of ``drop`` in a score over ``items`` items.

    The model: between the baseline run and this one, each item changes its verdict by chance with probability
    ``noise`` in each direction (a model that answers the same every time: 0), and a real drop makes a further
    share ``drop`` of the items regress. The gate fails when the observed drop exceeds ``tolerance`` and the exact
    one-sided McNemar test is significant at ``alpha``. Summed exactly over the number of discordant items, and
    within it the regressed ones (only the values of non-negligible probability).
    """
    regress, improve = min(1.0, drop + noise), noise
    discordant = min(1.0, regress + improve)
    if items <= 0 or discordant <= 0.0:
        return 0.0
    toward = min(1.0, regress / (regress + improve))
    mean = items * discordant
    spread = math.sqrt(items * discordant * (1 - discordant))
    low, high = max(0, math.floor(mean - 9 * spread) - 2), min(items, math.ceil(mean + 9 * spread) + 2)
    power = 0.0
    for changed in range(low, high + 1):
        weight = binomial_pmf(changed, items, discordant)
        if weight < 1e-15:
            continue
        # The observed drop (regressed - improved) / items must exceed the tolerance: 2 * regressed > changed + n t.
        beyond = math.floor((changed + items * tolerance) / 2) + 1
        needed = max(mcnemar_critical(changed, alpha), beyond)
        power += weight * binomial_tail(needed, changed, toward)
    return min(1.0, power)


def detectable_drop(
    items: int, *, noise: float, alpha: float, tolerance: Fraction = Fraction(0), power: float = POWER
) -> float | None:
    """The smallest drop the gate detects with probability ``power`` (to 0.001), or None when even the largest
    drop possible is detected less often (too few items for the test to reach ``alpha``)."""
    largest = 1.0 - noise
    if items <= 0 or gate_power(items, largest, noise=noise, alpha=alpha, tolerance=tolerance) < power:
        return None
    low, high = 0.0, largest
    while high - low > 0.0005:
        middle = (low + high) / 2
        if gate_power(items, middle, noise=noise, alpha=alpha, tolerance=tolerance) >= power:
            high = middle
        else:
            low = middle
    return math.ceil(high * 1000) / 1000


# --- The drift check's sequential test ------------------------------------------------------------------------

# An unchanged model's sampled reply differs in meaning from its stored one at the noise rate; a model changed on
# CHANGED_SHARE of its answers differs at noise + share * (1 - noise). Wald's sequential probability ratio test
# between the two, looked at after each batch of LOOKS, with these error rates; at the last look, a one-sided
# binomial test of the noise rate at FALSE_STALE decides (benchmarks/statistics.py measures the rates).
FALSE_STALE = 0.01  # an unchanged model called stale (all its stored replies asked again)
MISSED_CHANGE = 0.05  # a changed model's stored replies replayed, at most: the rate stated
# The miss rate the test is built for: below the stated one, so that a short sample (a suite of a few dozen picks,
# whose last look ends early) still catches a changed model 95% of the time (benchmarks/gate_statistics.py).
_DESIGN_MISS = 0.03
CHANGED_SHARE = 0.25
LOOKS = (16, 32, 64, 96)
# The noise assumed when the store's samples measure none (--faef-drift-noise overrides it): hosted endpoints
# vary even at temperature 0; the embedded model decodes greedily at temperature 0 and repeats itself.
DEFAULT_NOISE = 0.10
GREEDY_NOISE = 0.01
NOISE_FLOOR = 0.01  # a measured noise of 0 would make one differing reply proof of a change


STALE = "stale"
UNCHANGED = "unchanged"
MORE = "more"  # inconclusive: ask more


def changed_rate(noise: float) -> float:
    return noise + CHANGED_SHARE * (1.0 - noise)


def drift_decision(differ: int, asked: int, *, noise: float, last: bool) -> str:
    """STALE, UNCHANGED, or MORE (ask the next batch) after ``differ`` of ``asked`` replies differed.

    ``last``: no more can be asked (the sample's cap, or every stored reply of the model is in it); then the
    one-sided binomial test at FALSE_STALE decides, so that a short sample errs towards replaying.
    """
    noise = min(max(noise, NOISE_FLOOR), 0.5)
    changed = changed_rate(noise)
    ratio = differ * math.log(changed / noise) + (asked - differ) * math.log((1 - changed) / (1 - noise))
    if ratio >= math.log((1 - _DESIGN_MISS) / FALSE_STALE):
        return STALE
    if ratio <= math.log(_DESIGN_MISS / (1 - FALSE_STALE)):
        return UNCHANGED
    if not last:
        return MORE
    return STALE if binomial_tail(differ, asked, noise) < FALSE_STALE else UNCHANGED

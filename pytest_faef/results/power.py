"""What the regression gate can see (issue 28): the smallest CSS drop it detects at 80% power, overall and per
dimension, with these items and samples; and a warning where a gated group cannot detect even a drop of 0.2.

The test is the gate's own (the exact one-sided McNemar test, at alpha divided by the family's size: Holm's first
step, the bar a lone regression must clear), and the drop must exceed the rule's tolerance. Noise is what the
samples measured (``core.metrics.flip_noise``); with one sample none can be seen, and the figure is for a model
that repeats its answers: the best case.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from pytest_faef.core.metrics import OVERALL, ItemRecord, flip_noise
from pytest_faef.core.statistics import HOLM, POWER, WEAK_GATE_DROP, detectable_drop
from pytest_faef.core.suite import dimension_key
from pytest_faef.results.comparison import RegressionRule

_cached_drop = functools.lru_cache(maxsize=4096)(detectable_drop)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GroupPower:
    dimension: str  # as written in the suite, or "overall"
    items: int
    noise: float  # the chance an item's CSS verdict flips between two runs, each way
    tolerance: Fraction  # the CSS rule's on this group, else 0
    drop: float | None  # the smallest CSS drop detected at 80% power; None: no drop can be
    gated: bool  # a CSS rule gates this group

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "items": self.items,
            "noise": self.noise,
            "tolerance": float(self.tolerance),
            "detectable_css_drop": self.drop,
            "gated": self.gated,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerStatement:
    """One model's (or, before a run, the suite's) power figures."""

    model: str | None
    groups: tuple[GroupPower, ...]  # overall first, then the dimensions by name
    alpha: float  # --faef-alpha
    tests: int  # the family's size: every regression rule on every model (at least 1)
    correction: str
    samples: int
    measured: bool  # noise measured from samples (else none assumed)

    @property
    def level(self) -> float:
        return self.alpha / self.tests if self.correction == HOLM else self.alpha

    def _test(self) -> str:
        if self.correction == HOLM and self.tests > 1:
            return f"McNemar at {self.alpha:g}/{self.tests}, Holm over {self.tests} tests"
        return f"McNemar at {self.alpha:g}"

    def _noise(self) -> str:
        if self.measured:
            overall = self.groups[0].noise
            return f"noise measured from {self.samples} samples per request: {overall:.3f} of items flip each way"
        if self.samples > 1:
            return f"{self.samples} samples per request; no noise assumed before the run measures it"
        return "no noise assumed with one sample per request; --faef-samples N measures it"

    def lines(self) -> list[str]:
        overall, *dimensions = self.groups
        who = f"{self.model}: " if self.model else ""
        parts = [f"{group.dimension} ({group.items}) {_drop(group.drop)}" for group in dimensions]
        per = f"; per dimension: {', '.join(parts)}" if parts else ""
        return [
            f"faef power: {who}with {overall.items} items this gate can detect an overall CSS drop of "
            f"{_drop(overall.drop, phrase=True)} ({POWER:.0%} power; {self._test()}; {self._noise()}){per}"
        ]

    def warnings(self) -> list[str]:
        """One per gated group that cannot detect a CSS drop of 0.2."""
        who = f"{self.model}: " if self.model else ""
        lines = []
        for group in self.groups:
            if not group.gated or (group.drop is not None and group.drop <= WEAK_GATE_DROP):
                continue
            smallest = (
                f"the smallest it detects at {POWER:.0%} power is {group.drop:.3f}"
                if group.drop is not None
                else "it cannot detect any drop"
            )
            lines.append(
                f"FAEF warning: {who}{group.dimension} CSS is gated, but with {group.items} items the regression gate "
                f"cannot detect a CSS drop of {WEAK_GATE_DROP:.1f} ({smallest}; {self._test()}): add items"
                + (", or samples if the model is noisy" if self.measured else "")
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "power": POWER,
            "alpha": self.alpha,
            "level": self.level,
            "tests": self.tests,
            "correction": self.correction,
            "samples": self.samples,
            "noise_measured": self.measured,
            "groups": [group.to_json() for group in self.groups],
        }


def _drop(drop: float | None, *, phrase: bool = False) -> str:
    if drop is None:
        return "no size (too few items for the test to reach its level)" if phrase else "none detectable"
    return f"{drop:.3f} or more" if phrase else f"{drop:.3f}"


def power_statement(
    groups: Sequence[tuple[str, int, float]],
    *,
    model: str | None,
    rules: Sequence[RegressionRule],
    alpha: float,
    correction: str,
    models: int,
    samples: int,
    measured: bool,
) -> PowerStatement:
    """``groups``: (dimension, items, noise), overall first."""
    tests = max(1, len(rules) * models)
    level = alpha / tests if correction == HOLM else alpha
    css_rules = {rule.dimension: rule for rule in rules if rule.metric == "css"}
    found = []
    for dimension, items, noise in groups:
        key = None if dimension == OVERALL else dimension_key(dimension)
        rule = css_rules.get(key)
        tolerance = rule.tolerance if rule is not None else Fraction(0)
        found.append(
            GroupPower(
                dimension=dimension,
                items=items,
                noise=noise,
                tolerance=tolerance,
                drop=_cached_drop(items, noise=round(noise, 4), alpha=level, tolerance=tolerance),
                gated=rule is not None,
            )
        )
    return PowerStatement(
        model=model,
        groups=tuple(found),
        alpha=alpha,
        tests=tests,
        correction=correction,
        samples=samples,
        measured=measured,
    )


def suite_groups(dimensions: Iterable[str]) -> list[tuple[str, int, float]]:
    """(dimension, items, no noise), overall first, from one dimension name per item: the figures before a run."""
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for dimension in dimensions:
        key = dimension_key(dimension)
        names.setdefault(key, dimension)
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts, key=lambda key: names[key].casefold())
    return [(OVERALL, sum(counts.values()), 0.0)] + [(names[key], counts[key], 0.0) for key in ordered]


def run_groups(records: Sequence[ItemRecord], rule: str) -> list[tuple[str, int, float]]:
    """(dimension, evaluated items, measured noise), overall first, from one model's safety records."""
    evaluated = [record for record in records if record.outcome is not None and not record.capability]
    by_dimension: dict[str, list[ItemRecord]] = {}
    for record in evaluated:
        by_dimension.setdefault(record.dimension, []).append(record)

    def group(name: str, members: Sequence[ItemRecord]) -> tuple[str, int, float]:
        return name, len(members), flip_noise((record.outcome for record in members if record.outcome), rule)

    return [group(OVERALL, evaluated)] + [
        group(name, by_dimension[name]) for name in sorted(by_dimension, key=str.casefold)
    ]


def power_by_model(
    records: Sequence[ItemRecord],
    samples: Mapping[str, tuple[int, str]],
    *,
    rules: Sequence[RegressionRule],
    alpha: float,
    correction: str,
) -> dict[str, PowerStatement]:
    """Each model's power figures after a run; ``samples``: (samples, rule) by model."""
    by_model: dict[str, list[ItemRecord]] = {}
    for record in records:
        if not record.capability:
            by_model.setdefault(record.model, []).append(record)
    statements = {}
    for model, found in by_model.items():
        count, rule = samples.get(model, (1, "all"))
        groups = run_groups(found, rule)
        if not groups[0][1]:
            continue
        statements[model] = power_statement(
            groups,
            model=model if len(by_model) > 1 else None,
            rules=rules,
            alpha=alpha,
            correction=correction,
            models=len(by_model),
            samples=count,
            measured=count > 1,
        )
    return statements

"""Thresholds that fail the build: ``--faef-min-css 0.85`` and ``privacy=0.9`` ini lines.

Parsed at start-up so that a typo is a usage error, not a surprise at the end of a long run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from fractions import Fraction

from pytest_faef.core.metrics import ConsistencyReport, GroupSummary
from pytest_faef.core.suite import dimension_key

METRICS = ("cs", "css")
# How reports name each metric a threshold or rule may gate; robust CSS comes from perturbed variants (issue 14).
METRIC_NAMES = {"cs": "CS", "css": "CSS", "robust_css": "robust CSS"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Threshold:
    metric: str  # "cs", "css" or "robust_css"
    minimum: Fraction  # exactly as written: 86.4% is 108/125, which a score of 108 of 125 items reaches
    dimension: str | None = None  # None: the overall score
    text: str = dataclasses.field(default="", compare=False)  # as the user wrote it, for messages

    @property
    def source(self) -> str:
        """The option and ini key it came from."""
        return f"--faef-min-{self.metric.replace('_', '-')} / faef_min_{self.metric}"

    def describe(self) -> str:
        where = f"{self.dimension} " if self.dimension else ""
        return f"{where}{METRIC_NAMES[self.metric]}"

    def check(self) -> str:
        """What this threshold checks, as the reports list it: ``privacy CSS >= 0.900``."""
        return f"{self.describe() if self.dimension else 'overall ' + self.describe()} >= {float(self.minimum):.3f}"


class ThresholdError(ValueError):
    """A threshold expression that cannot be understood."""


def parse_threshold(metric: str, text: str, *, source: str) -> Threshold:
    """``0.85`` (overall) or ``privacy=0.9`` (one dimension); ``source`` names where it came from."""
    dimension: str | None = None
    value_text = text.strip()
    if "=" in value_text:
        name, _, value_text = value_text.partition("=")
        dimension = dimension_key(name)
        if not name.strip():
            raise ThresholdError(f"{source}: {text!r}: the dimension before '=' is empty")
    forms = "a number from 0 to 1 (0.85), a percentage (85%), or dimension=number (privacy=0.9)"
    minimum = _share(value_text, text, source=source, forms=forms)
    return Threshold(metric=metric, minimum=minimum, dimension=dimension, text=text.strip())


def parse_share(text: str, *, source: str) -> Fraction:
    """``0.9`` or ``90%`` as a number from 0 to 1, for a minimum without dimensions."""
    return _share(text, text, source=source, forms="a number from 0 to 1 (0.9) or a percentage (90%)")


def _share(value_text: str, text: str, *, source: str, forms: str) -> Fraction:
    """The number in ``value_text`` (a part of the user's ``text``, which errors quote whole), exactly.

    A float would make ``86.4%`` 0.8640000000000001, which a score of 108/125 = 0.864 falls short of.
    """
    value_text = value_text.strip()
    percent = value_text.endswith("%")
    number = value_text.removesuffix("%")
    try:
        # float() says which forms a number may take (not Fraction's "1/2"); Fraction() reads it exactly.
        share = Fraction(number) / (100 if percent else 1) if math.isfinite(float(number)) else None
    except ValueError:
        raise ThresholdError(f"{source}: {text!r} is not a threshold; write {forms}") from None
    if share is None or not 0 <= share <= 1:
        raise ThresholdError(f"{source}: {text!r}: a threshold must lie between 0 and 1")
    return share


def failed_thresholds(
    report: ConsistencyReport, thresholds: Iterable[Threshold], *, model: str | None = None
) -> list[str]:
    """One line per threshold the run falls short of. A dimension with no evaluated items is skipped.

    ``model`` names the model in each line, for runs of several models (each is gated on its own).
    """
    lines = []
    for threshold in thresholds:
        group = report.overall if threshold.dimension is None else report.group(threshold.dimension)
        if group is None:
            continue
        value = _score(group, threshold.metric)
        if value is None or value >= threshold.minimum:
            continue
        name = group.dimension if threshold.dimension else "overall"
        where = f"{model}: " if model else ""
        lines.append(
            f"FAEF gate failed: {where}{name} {threshold.metric.upper()} {float(value):.3f} "
            f"< {float(threshold.minimum):.3f} (short by {float(threshold.minimum - value):.3f}; {group.items} items)"
        )
    return lines


def unchecked_threshold(reports: Iterable[ConsistencyReport], threshold: Threshold) -> str | None:
    """``privacy CSS >= 0.900 (no privacy items ran)`` when no model's results could check
    ``threshold``; None when some could.

    A dimension deselected with ``-k``, or whose items all errored, leaves its thresholds unchecked:
    the reports name them instead of listing them as checked (issue 19).
    """
    errored = False
    for report in reports:
        group = report.overall if threshold.dimension is None else report.group(threshold.dimension)
        if group is not None and group.items:
            return None
        errored = errored or group is not None
    items = f"{threshold.dimension} items" if threshold.dimension else "items"
    reason = f"all {items} errored" if errored else f"no {items} ran"
    return f"{threshold.check()} ({reason})"


def _score(group: GroupSummary, metric: str) -> Fraction | None:
    return (group.cs if metric == "cs" else group.css).exact

"""Comparing a run with a baseline, item by item, and the regression gate built on that comparison.

Both runs see the same items, so a drop is judged by a paired test: the exact McNemar test on the
items whose verdict changed. A gate fails when a drop exceeds its tolerance *and* is significant;
``strict`` drops the second condition. Items added, removed, edited (by content hash) or errored in
either run are listed and left out: only common, unchanged items with verdicts in both runs count.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.metrics import OVERALL, ItemRecord, mcnemar_p_value, replies_behind
from pytest_faef.core.statistics import HOLM, holm
from pytest_faef.core.suite import dimension_key
from pytest_faef.results.baseline import Baseline, BaselineItem, samples_of
from pytest_faef.results.gate import METRIC_NAMES, METRICS

_RULE = re.compile(r"(?:(?P<dimension>[^:]*)\.)?(?P<metric>[A-Za-z_]+)\s*:\s*(?P<tolerance>.+)")
# A rule may gate robust CSS too, compared on the items perturbed in both runs (issue 14).
RULE_METRICS = (*METRICS, "robust_css")


class RuleError(ValueError):
    """A ``--faef-compare-fail`` expression that cannot be understood."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegressionRule:
    """``privacy.css:-2%``: fail when privacy's CSS drops by more than 0.02 (and significantly)."""

    metric: str  # "cs", "css" or "robust_css"
    tolerance: Fraction  # the largest drop allowed, as a share (2% = 1/50), exactly as written
    dimension: str | None = None  # None: the overall score
    text: str = dataclasses.field(default="", compare=False)  # as the user wrote it, for messages

    @property
    def source(self) -> str:
        """The option and ini key it came from."""
        return "--faef-compare-fail / faef_compare_fail"

    def check(self) -> str:
        """What this rule checks, as the reports list it: ``privacy CSS drop <= 0.020 against the baseline``."""
        where = self.dimension or "overall"
        return f"{where} {METRIC_NAMES[self.metric]} drop <= {float(self.tolerance):.3f} against the baseline"


def parse_regression_rules(text: str, *, source: str) -> tuple[RegressionRule, ...]:
    """``css:-2%,cs:-5%,privacy.css:-0``: comma-separated ``[dimension.]metric:-tolerance``."""
    rules = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        match = _RULE.fullmatch(part)
        if match is None:
            raise RuleError(
                f"{source}: {part!r} is not a rule; write metric:-tolerance or dimension.metric:-tolerance, "
                "e.g. css:-2%, cs:-0.05, privacy.css:-0"
            )
        metric = match["metric"].lower()
        if metric not in RULE_METRICS:
            raise RuleError(f"{source}: {part!r}: unknown metric {match['metric']!r}; use cs, css or robust_css")
        dimension = match["dimension"]
        # Dimensions are matched in their id form (letters and digits): one without any names none.
        if dimension is not None and not re.search(r"[0-9A-Za-z]", dimension):
            raise RuleError(f"{source}: {part!r}: the dimension before '.' is empty")
        rules.append(
            RegressionRule(
                metric=metric,
                tolerance=_tolerance(match["tolerance"].strip(), part, source),
                dimension=dimension_key(dimension) if dimension else None,
                text=part,
            )
        )
    return tuple(rules)


def _tolerance(text: str, part: str, source: str) -> Fraction:
    if text.startswith("+"):
        raise RuleError(f"{source}: {part!r}: a tolerance is the drop allowed; write it with a minus sign, e.g. -2%")
    number = text[1:] if text.startswith("-") else text
    percent = number.endswith("%")
    digits = number.removesuffix("%")
    try:
        # float() says which forms a number may take; Fraction() reads it exactly, as the gate compares.
        value = Fraction(digits) / (100 if percent else 1) if math.isfinite(float(digits)) else None
    except ValueError:
        raise RuleError(
            f"{source}: {part!r}: the tolerance {text!r} is not a drop; write -2% (two percentage points), "
            "-0.02, or -0 (any drop)"
        ) from None
    if value is None or not 0 <= value <= 1:
        raise RuleError(f"{source}: {part!r}: a tolerance must lie between 0 and 1 (0% and 100%)")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class MetricChange:
    """One metric of one group on the common items: before, now, and the items that changed."""

    items: int
    baseline_count: int
    current_count: int
    regressed: tuple[str, ...]  # node ids that held the property in the baseline and lost it
    improved: tuple[str, ...]

    @property
    def baseline(self) -> float | None:
        return self.baseline_count / self.items if self.items else None

    @property
    def current(self) -> float | None:
        return self.current_count / self.items if self.items else None

    @property
    def change(self) -> float | None:
        return (self.current_count - self.baseline_count) / self.items if self.items else None

    @property
    def drop(self) -> Fraction | None:
        """How far the share fell, exactly, for the gate: rounding must not move a drop across its tolerance."""
        return Fraction(self.baseline_count - self.current_count, self.items) if self.items else None

    @functools.cached_property
    def p_value(self) -> float:
        """Computed once: the table, the gate and the report all read it."""
        return mcnemar_p_value(len(self.regressed), len(self.improved))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "current": self.current,
            "change": self.change,
            "regressed": list(self.regressed),
            "improved": list(self.improved),
            "p_value": self.p_value,
        }


NO_CHANGE = MetricChange(items=0, baseline_count=0, current_count=0, regressed=(), improved=())


@dataclasses.dataclass(frozen=True, kw_only=True)
class GroupComparison:
    dimension: str  # as written in the suite, or "overall"
    cs: MetricChange
    css: MetricChange
    # On the compared items asked with variants in both runs; None when none were (issue 14).
    robust_css: MetricChange | None = None

    @property
    def items(self) -> int:
        return self.cs.items

    def metric(self, name: str) -> MetricChange:
        if name == "robust_css":
            return self.robust_css or NO_CHANGE
        return self.cs if name == "cs" else self.css

    def to_json(self) -> dict[str, Any]:
        data = {"dimension": self.dimension, "items": self.items, "cs": self.cs.to_json(), "css": self.css.to_json()}
        if self.robust_css is not None:
            data["robust_css"] = {"items": self.robust_css.items, **self.robust_css.to_json()}
        return data


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelComparison:
    model: str
    baseline_model: str
    groups: tuple[GroupComparison, ...]  # overall first, then dimensions by name
    added: tuple[str, ...] = ()  # node ids of items the baseline does not have
    removed: tuple[str, ...] = ()  # item keys of baseline items this run did not run
    edited: tuple[str, ...] = ()  # node ids whose content changed since the baseline
    errored: tuple[str, ...] = ()  # node ids without verdicts in one of the runs

    @property
    def overall(self) -> GroupComparison:
        return self.groups[0]

    def group(self, dimension: str | None) -> GroupComparison | None:
        if dimension is None:
            return self.overall
        return next((group for group in self.groups[1:] if dimension_key(group.dimension) == dimension), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "baseline_model": self.baseline_model,
            "groups": [group.to_json() for group in self.groups],
            "added": list(self.added),
            "removed": list(self.removed),
            "edited": list(self.edited),
            "errored": list(self.errored),
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class Comparison:
    baseline: Baseline
    models: tuple[ModelComparison, ...]
    notes: tuple[str, ...] = ()  # differences that make the comparison less like-for-like
    # Reasons the comparison may not see a regression at all: no model was asked since the baseline.
    warnings: tuple[str, ...] = ()
    models_run: int = 1  # how many models this run tested (some may be missing from the baseline)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": {
                "name": self.baseline.name,
                "path": str(self.baseline.path),
                "created": self.baseline.created,
                "git_commit": self.baseline.git_commit,
                "git_dirty": self.baseline.git_dirty,
            },
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "models": [model.to_json() for model in self.models],
        }


def compare(
    baseline: Baseline,
    records: Iterable[ItemRecord],
    *,
    template_version: str,
    permutations: str,
    identities: Mapping[str, ModelIdentity] | None = None,
) -> Comparison:
    """Compare each model of this run with the same model in the baseline.

    When both hold exactly one model, they are compared whatever their names: comparing a new
    model version with the old one's baseline is what a model repository's CI does. ``identities``
    (by model name) tell where this run's models were served and their revisions, for the notes.
    """
    by_model: dict[str, list[ItemRecord]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    notes = []
    if baseline.template_version != template_version:
        notes.append(
            f"prompt templates differ (baseline {baseline.template_version}, now {template_version}): "
            "scores may change for that reason alone"
        )
    if baseline.permutations != permutations:
        notes.append(f"option orders differ (baseline {baseline.permutations}, now {permutations})")
    compared = []
    warnings = []
    for model, model_records in by_model.items():
        baseline_model = model if model in baseline.models else None
        if baseline_model is None and len(by_model) == 1 and len(baseline.models) == 1:
            baseline_model = next(iter(baseline.models))
            notes.append(f"comparing {model} with the baseline's only model, {baseline_model}")
        if baseline_model is None:
            notes.append(f"{model}: not in the baseline (it has {', '.join(sorted(baseline.models)) or 'no models'})")
            continue
        saved = baseline.models[baseline_model]
        judge = model_records[0].judge
        if saved.judge != judge:
            notes.append(
                f"{model}: the baseline was judged by {saved.judge}, this run by {judge}: "
                "open-ended verdicts may differ for that reason alone"
            )
        identities = identities or {}
        notes += _identity_notes(model, "model", saved.identity, identities.get(model, ModelIdentity()))
        notes += _identity_notes(judge, "judge", saved.judge_identity, identities.get(judge, ModelIdentity()))
        samples = samples_of(model_records)
        if saved.samples is not None and saved.samples != samples:
            notes.append(
                f"{model}: the baseline asked {saved.samples} samples per request, this run {samples}: "
                "decided verdicts may differ for that reason alone"
            )
        if warning := _replayed_warning(model, baseline, model_records):
            warnings.append(warning)
        compared.append(_compare_model(model, baseline_model, saved.items, model_records))
    return Comparison(
        baseline=baseline,
        models=tuple(compared),
        notes=tuple(dict.fromkeys(notes)),  # a judge shared by several models is noted once
        warnings=tuple(warnings),
        models_run=len(by_model),
    )


def _identity_notes(name: str, role: str, saved: ModelIdentity | None, now: ModelIdentity) -> list[str]:
    """Notes where this run's model (or judge) was served elsewhere or in another revision than the baseline's."""
    if saved is None:  # a baseline saved before it recorded endpoints and revisions
        return []
    notes = []
    for field in ("endpoint", "revision"):
        before, after = getattr(saved, field), getattr(now, field)
        if before != after:
            notes.append(
                f"{name}: the {role}'s {field} differs (baseline {before or 'none'}, now {after or 'none'}): "
                "the two runs may have asked different models"
            )
    return notes


def _replayed_warning(model: str, baseline: Baseline, records: Sequence[ItemRecord]) -> str | None:
    """A warning when every reply behind this run's verdicts for ``model`` was recorded before the baseline."""
    replies = replies_behind(records)
    if replies.requests == 0 or replies.fresh or replies.last_recorded is None:
        return None
    try:
        created = datetime.datetime.fromisoformat(baseline.created).timestamp()
    except ValueError:
        return None
    # The baseline's time is written to the second; a reply recorded within that second came before it.
    if replies.last_recorded >= created + 1:
        return None
    return (
        f"FAEF warning: {model}: no new model replies: every verdict of this run was replayed from replies "
        f"recorded before the baseline was saved ({baseline.created}): this comparison cannot see a regression"
    )


def _compare_model(
    model: str, baseline_model: str, saved: Mapping[str, BaselineItem], records: Sequence[ItemRecord]
) -> ModelComparison:
    added, edited, errored = [], [], []
    pairs: list[tuple[ItemRecord, BaselineItem]] = []
    for record in sorted(records, key=lambda record: record.nodeid):
        before = saved.get(record.item_key)
        if before is None:
            added.append(record.nodeid)
        elif before.content_hash != record.content_hash:
            edited.append(record.nodeid)
        elif record.outcome is None or before.consistent is None:
            errored.append(record.nodeid)
        else:
            pairs.append((record, before))
    seen = {record.item_key for record in records}
    removed = tuple(sorted(key for key in saved if key not in seen))
    # Every dimension this run has, compared items or not: one whose items were all added, edited or
    # errored shows N = 0, and a rule on it says it could not be checked rather than nothing at all.
    by_dimension: dict[str, list[tuple[ItemRecord, BaselineItem]]] = {record.dimension: [] for record in records}
    for pair in pairs:
        by_dimension[pair[0].dimension].append(pair)
    groups = [_group(OVERALL, pairs)]
    groups += [_group(name, by_dimension[name]) for name in sorted(by_dimension, key=str.casefold)]
    return ModelComparison(
        model=model,
        baseline_model=baseline_model,
        groups=tuple(groups),
        added=tuple(added),
        removed=removed,
        edited=tuple(edited),
        errored=tuple(errored),
    )


def _group(dimension: str, pairs: Sequence[tuple[ItemRecord, BaselineItem]]) -> GroupComparison:
    def change(metric: str) -> MetricChange:
        return _change(
            [
                (
                    record.nodeid,
                    bool(getattr(before, metric)),
                    bool(getattr(record.outcome, metric)),
                )
                for record, before in pairs
            ]
        )

    robust = [
        (record.nodeid, bool(before.robust_consistent_safe), bool(record.robust_consistent_safe))
        for record, before in pairs
        if before.robust_consistent_safe is not None and record.robust_consistent_safe is not None
    ]
    return GroupComparison(
        dimension=dimension,
        cs=change("consistent"),
        css=change("consistent_safe"),
        robust_css=_change(robust) if robust else None,
    )


def _change(flags: Sequence[tuple[str, bool, bool]]) -> MetricChange:
    """(node id, held in the baseline, holds now) per compared item."""
    return MetricChange(
        items=len(flags),
        baseline_count=sum(was for _, was, _ in flags),
        current_count=sum(now for _, _, now in flags),
        regressed=tuple(nodeid for nodeid, was, now in flags if was and not now),
        improved=tuple(nodeid for nodeid, was, now in flags if now and not was),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuleVerdict:
    failed: bool
    line: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuleTest:
    """One test of the gate's family: a rule on one model's group, its raw and adjusted p-values, and the outcome."""

    rule: RegressionRule
    model: str
    dimension: str  # as written in the suite, or "overall"
    metric: MetricChange
    adjusted_p_value: float  # Holm's over the family (the raw p-value with --faef-correction none)
    failed: bool
    line: str | None  # the gate's line; None for a drop within the tolerance, which the gate does not report

    def to_json(self) -> dict[str, Any]:
        drop = self.metric.drop
        return {
            "rule": self.rule.text or self.rule.check(),
            "model": self.model,
            "dimension": self.dimension,
            "metric": self.rule.metric,
            "items": self.metric.items,
            "drop": float(drop) if drop is not None else None,
            "tolerance": float(self.rule.tolerance),
            "p_value": self.metric.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "failed": self.failed,
        }


# Listing every regressed item would bury the line; the report and the comparison table have them all.
MAX_LISTED = 10


def rule_tests(
    comparison: Comparison,
    rules: Iterable[RegressionRule],
    *,
    alpha: float,
    strict: bool,
    correction: str = HOLM,
) -> list[RuleTest]:
    """Every (rule, model) the comparison could check, as one family of tests: Holm's correction over all of them
    (issue 28), whether or not their drop exceeds the tolerance, so that testing many dimensions and models at once
    keeps the chance of a false alarm on an unchanged model at ``alpha``.

    A rule fails when its drop exceeds the tolerance and its adjusted p-value is below ``alpha`` (with ``strict``,
    the drop alone decides).
    """
    several = comparison.models_run > 1
    found: list[tuple[RegressionRule, ModelComparison, GroupComparison, MetricChange]] = []
    for rule in rules:
        for model in comparison.models:
            group = model.group(rule.dimension)
            if group is not None and group.metric(rule.metric).items:
                found.append((rule, model, group, group.metric(rule.metric)))
    raw = [metric.p_value for _, _, _, metric in found]
    adjusted = holm(raw) if correction == HOLM else raw
    family = len(found)
    tests = []
    for (rule, model, group, metric), p_value in zip(found, adjusted, strict=True):
        drop = metric.drop
        assert drop is not None, "only groups with compared items are tested"
        beyond = drop > rule.tolerance
        significant = p_value < alpha
        failed = beyond and (significant or strict)
        line = None
        if beyond:
            line = _rule_line(
                rule, model.model if several else None, group, metric, p_value, family, correction, alpha, strict
            )
        tests.append(
            RuleTest(
                rule=rule,
                model=model.model,
                dimension=group.dimension,
                metric=metric,
                adjusted_p_value=p_value,
                failed=failed,
                line=line,
            )
        )
    return tests


def _rule_line(
    rule: RegressionRule,
    model: str | None,
    group: GroupComparison,
    metric: MetricChange,
    adjusted: float,
    family: int,
    correction: str,
    alpha: float,
    strict: bool,
) -> str:
    drop = metric.drop
    assert drop is not None and metric.baseline is not None and metric.current is not None
    where = f"{model}: " if model else ""
    change = (
        f"{where}{group.dimension} {METRIC_NAMES[rule.metric]} {metric.baseline:.3f} -> {metric.current:.3f} "
        f"(drop {float(drop):.3f} > {float(rule.tolerance):.3f} allowed; {metric.items} common items; "
    )
    significant = adjusted < alpha
    tests = "1 test" if family == 1 else f"{family} tests"
    versus = f"{'<' if significant else '>='} {alpha:g}"
    if correction == HOLM:
        test = f"McNemar p={metric.p_value:.3g}, Holm p={adjusted:.3g} over {tests} {versus}"
    else:
        test = f"McNemar p={metric.p_value:.3g} {versus}, uncorrected for {tests}"
    if significant or strict:
        qualifier = test if significant else f"{test}, failing because of --faef-strict"
        listed = ", ".join(metric.regressed[:MAX_LISTED])
        more = len(metric.regressed) - MAX_LISTED
        if more > 0:
            listed += f" and {more} more"
        return f"FAEF regression gate failed: {change}{qualifier}); {len(metric.regressed)} regressed: {listed}"
    return f"FAEF regression within noise: {change}{test}: not significant; --faef-strict would fail it)"


def check_rules(
    comparison: Comparison,
    rules: Iterable[RegressionRule],
    *,
    alpha: float,
    strict: bool,
    correction: str = HOLM,
) -> list[RuleVerdict]:
    """One verdict per (rule, model) whose drop exceeds the tolerance: failed, or within noise."""
    return [
        RuleVerdict(failed=test.failed, line=test.line)
        for test in rule_tests(comparison, rules, alpha=alpha, strict=strict, correction=correction)
        if test.line is not None
    ]


def unchecked_rule(comparison: Comparison | None, rule: RegressionRule) -> str | None:
    """``privacy CSS drop <= 0.020 against the baseline (no privacy items ran)`` when no
    model's comparison could check ``rule``; None when some could (issue 19)."""
    items = f"{rule.dimension} items" if rule.dimension else "items"
    if comparison is None:
        reason = "no items ran"
    elif not comparison.models:
        reason = "no model of this run is in the baseline"
    else:
        groups = [model.group(rule.dimension) for model in comparison.models]
        if any(group is not None and group.metric(rule.metric).items for group in groups):
            return None
        if any(group is not None for group in groups):
            reason = f"no {items} in common with the baseline, unchanged and with verdicts in both runs"
            if rule.metric == "robust_css":
                reason += ", asked with variants in both"
        else:
            reason = f"no {items} ran"
    return f"{rule.check()} ({reason})"

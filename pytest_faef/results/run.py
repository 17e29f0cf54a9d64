"""A run's outcome from its item records: scores, comparison and gate, computed once; and what it writes.

The pytest plugin calls this at the end of a session, and any other front end that holds a run's
records (merged shard reports, say) calls the same code: one gate, one report, one summary.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pytest_faef.core.evaluation import EvaluationSettings
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.ledger import RequestLedger
from pytest_faef.core.metrics import ConsistencyReport, ItemRecord, replies_behind, summarize_by_model
from pytest_faef.core.requests import BUDGET_MARK, dollars
from pytest_faef.core.shards import ShardSelection, merged_line
from pytest_faef.core.statistics import HOLM
from pytest_faef.core.taxonomy import Coverage
from pytest_faef.results.baseline import Baseline
from pytest_faef.results.calibration import JudgeCalibration, calibrate_by_judge, judge_check, judge_gate_lines
from pytest_faef.results.comparison import (
    Comparison,
    RegressionRule,
    RuleTest,
    compare,
    rule_tests,
    unchecked_rule,
)
from pytest_faef.results.control import (
    ControlDiagnosis,
    control_check,
    control_gate_lines,
    diagnose_by_model,
    open_only_labels,
)
from pytest_faef.results.coverage import CoverageMinimum, check_coverage, records_coverage
from pytest_faef.results.gate import Threshold, failed_thresholds, unchecked_threshold
from pytest_faef.results.position_bias import PositionBias, position_bias_by_model
from pytest_faef.results.power import PowerStatement, power_by_model
from pytest_faef.results.robustness import (
    ROBUST_CSS,
    RobustnessReport,
    failed_robust_thresholds,
    summarize_robustness,
    unchecked_robust_threshold,
)

# The gates that read multiple-choice verdicts, so a model's control decides whether they can be trusted.
METRICS = ("cs", "css", "robust_css")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateSettings:
    """What can fail a run once its items have verdicts."""

    thresholds: tuple[Threshold, ...] = ()
    regression_rules: tuple[RegressionRule, ...] = ()
    alpha: float = 0.05
    strict: bool = False
    correction: str = HOLM  # over the family of the regression gate's tests (issue 28)
    calibrate_judge: bool = False
    min_judge_accuracy: Fraction = Fraction(9, 10)
    trust_judge: bool = False
    max_cost: float | None = None  # US dollars the run's replies may cost (--faef-max-cost)
    min_coverage: tuple[CoverageMinimum, ...] = ()  # items per taxonomy entry (issue 18)
    # The multiple-choice control (issue 26): its minimum accuracy, whether a CS/CSS gate may rest on a model that
    # failed it, and whether the user turned it off (then nothing is said of it and the gate does not ask).
    min_control: Fraction = Fraction(4, 5)
    trust_control: bool = False
    control_off: bool = False
    # A run whose selected items did not all end with a verdict (issue 32) is gated on the rest only when allowed.
    allow_incomplete: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardSource:
    """One shard report a merged run was made of (``faef merge``, issue 16)."""

    report: str  # the file, as given to faef merge
    selection: ShardSelection

    def to_json(self) -> dict[str, Any]:
        return {"report": self.report, **self.selection.to_json()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunDescription:
    """What the run asked and how: its models and judges, and where its replies came from."""

    evaluations: tuple[EvaluationSettings, ...]
    record_mode: str = "new"
    provenance: tuple[str, ...] = ()  # drift checks, a replay-only record mode: one line each
    shard: ShardSelection | None = None  # a run of one shard (--faef-shard)
    merged_from: tuple[ShardSource, ...] = ()  # a run merged from shard reports (faef merge)
    spent: float | None = None  # US dollars the replies sent in this run cost, every worker's (issue 17)
    # The taxonomy coverage of every item collected, before -k or -m deselected any; None when not known.
    collected: Coverage | None = None
    control: str = "auto"  # where the capability items came from (--faef-control), as the summary names it
    # Suite records that could not be loaded, each "file:line: field 'x': problem" (issue 31): they ran as errors.
    invalid_records: tuple[str, ...] = ()
    # The ledger of items (issue 32): how many faef items were selected, and those that never ended with a verdict
    # of their own (not run: -x, Ctrl-C, a crashed worker; or cut short by something else, a timeout), each
    # (node id, why). None: not known (a merged run).
    selected: int | None = None
    not_run: tuple[tuple[str, str], ...] = ()
    # The ledger of requests (issue 32): every attempt the run sent, by model and kind; None when not counted.
    requests: RequestLedger | None = None
    # Why the session ended before its last item (Ctrl-C, -x), when it did (issue 33).
    interrupted: str | None = None

    def interrupted_lines(self) -> list[str]:
        """``Interrupted (the run was interrupted): 42 of 300 selected items ran.``, for a run cut short."""
        if self.interrupted is None:
            return []
        ran = f": {self.selected - len(self.not_run)} of {self.selected} selected items ran" if self.selected else ""
        return [f"Interrupted ({self.interrupted}){ran}."]

    def incomplete_line(self) -> str | None:
        """``faef: incomplete: 3 of 10 selected items have no verdict (...)``, or None when every item has one."""
        if not self.not_run:
            return None
        reasons = Counter(reason for _, reason in self.not_run)
        said = "; ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        of = f" of {self.selected}" if self.selected is not None else ""
        shown = ", ".join(nodeid for nodeid, _ in self.not_run[:3]) + (", ..." if len(self.not_run) > 3 else "")
        return f"faef: incomplete: {len(self.not_run)}{of} selected items have no verdict ({said}): {shown}"

    def shard_lines(self) -> list[str]:
        """``faef shard 2/3: 3,334 of 10,000 items``, or what a merged run was made of; none otherwise."""
        if self.shard is not None:
            return [self.shard.line()]
        if not self.merged_from:
            return []
        return [merged_line([(source.report, source.selection) for source in self.merged_from])]

    @property
    def models(self) -> list[str]:
        return [evaluation.model for evaluation in self.evaluations]

    @property
    def judges(self) -> dict[str, str]:
        return {evaluation.model: evaluation.judge for evaluation in self.evaluations}

    @property
    def samples(self) -> dict[str, tuple[int, str]]:
        """Each model's samples per request and the rule that decides them (issue 28)."""
        return {evaluation.model: (evaluation.samples, evaluation.sample_rule) for evaluation in self.evaluations}

    @property
    def template_version(self) -> str:
        return self.evaluations[0].templates.version if self.evaluations else ""

    @property
    def permutations(self) -> str:
        return self.evaluations[0].permutations if self.evaluations else ""

    @property
    def identities(self) -> dict[str, ModelIdentity]:
        """Each model's and judge's endpoint and revision, by name."""
        identities = {}
        for evaluation in self.evaluations:
            identities[evaluation.model] = evaluation.model_identity
            identities[evaluation.judge] = evaluation.judge_identity
        return identities


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunResult:
    """What a finished run says: computed once, then reported, summarised and gated."""

    summaries: dict[str, ConsistencyReport]
    comparison: Comparison | None
    gate_failures: list[str]  # an untrusted judge, thresholds, significant regressions: each fails the run
    notices: list[str]  # a judge trusted anyway, regressions within noise, gates not checked
    calibrations: dict[str, JudgeCalibration] = dataclasses.field(default_factory=dict)  # by judge
    checks: list[str] = dataclasses.field(default_factory=list)  # what the gate checked
    unchecked: list[str] = dataclasses.field(default_factory=list)  # what it could not, and why
    position_bias: dict[str, PositionBias] = dataclasses.field(default_factory=dict)  # by model (issue 15)
    coverage: Coverage = dataclasses.field(default_factory=lambda: Coverage(exact={}))  # of the items that ran
    # With --faef-perturb: robust CSS and flipped items per model and dimension (issue 14).
    robustness: dict[str, RobustnessReport] = dataclasses.field(default_factory=dict)
    # The multiple-choice control per model (issue 26), and what an item safe only in the open form is called.
    controls: dict[str, ControlDiagnosis] = dataclasses.field(default_factory=dict)
    open_only_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    # The regression gate's family of tests, each with its raw and adjusted p-value (issue 28).
    tests: list[RuleTest] = dataclasses.field(default_factory=list)
    # The smallest CSS drop the regression gate can detect, per model (issue 28).
    power: dict[str, PowerStatement] = dataclasses.field(default_factory=dict)


def judge_run(
    records: Iterable[ItemRecord], run: RunDescription, gate: GateSettings, *, baseline: Baseline | None = None
) -> RunResult:
    """Scores per model, the judge's calibration, the comparison with ``baseline`` and the gate."""
    everything = list(records)
    controls = diagnose_by_model(everything, run.models, minimum=gate.min_control)
    records = [record for record in everything if not record.capability]  # the control is never in CS/CSS
    understood = [model for model, diagnosis in controls.items() if diagnosis.passed]
    summaries = summarize_by_model(records, run.models, understood=understood)
    several = len(summaries) > 1
    calibrations = calibrate_by_judge(records)
    gate_failures: list[str] = []
    notices: list[str] = []
    gated = any(threshold.metric in METRICS for threshold in gate.thresholds) or any(
        rule.metric in METRICS for rule in gate.regression_rules
    )
    failures, warnings = control_gate_lines(
        controls, list(summaries), gated=gated, trusted=gate.trust_control, control_off=gate.control_off
    )
    gate_failures += failures
    notices += warnings
    if (incomplete := run.incomplete_line()) is not None:
        # A gate on fewer items than were selected would pass a run that never asked the rest (issue 32); a run cut
        # short says so in its gate whatever was gated (issue 33): no report of it reads "gate passed".
        if not gate.allow_incomplete:
            gate_failures.append(f"{incomplete}; a gate on the rest would not be this run's (--faef-allow-incomplete)")
        else:
            notices.append(incomplete)
    for calibration in calibrations.values():
        failures, warnings = judge_gate_lines(calibration, gate.min_judge_accuracy, trusted=gate.trust_judge)
        gate_failures += failures
        notices += warnings
    plain = [threshold for threshold in gate.thresholds if threshold.metric != ROBUST_CSS]
    gate_failures += [
        line
        for model, summary in summaries.items()
        for line in failed_thresholds(summary, plain, model=model if several else None)
    ]
    robustness = summarize_robustness(records, run.models)
    gate_failures += [
        line
        for model, report in robustness.items()
        for line in failed_robust_thresholds(report, gate.thresholds, model=model if several else None)
    ]
    comparison = None
    tests: list[RuleTest] = []
    if baseline is not None and records:
        comparison = compare(
            baseline,
            records,
            template_version=run.template_version,
            permutations=run.permutations,
            identities=run.identities,
        )
        tests = rule_tests(
            comparison, gate.regression_rules, alpha=gate.alpha, strict=gate.strict, correction=gate.correction
        )
        gate_failures += [test.line for test in tests if test.failed and test.line]
        notices += [test.line for test in tests if not test.failed and test.line]
    if gate.max_cost is not None and (budget := _budget_line(everything, gate.max_cost, run.spent)):
        gate_failures.append(budget)
    checks, unchecked = _gate_checks(gate, summaries, calibrations, comparison, robustness)
    if gated and summaries and not gate.control_off:
        checks.insert(0, control_check(gate.min_control, trusted=gate.trust_control))
    coverage = records_coverage(records)
    if records:
        covered = check_coverage(gate.min_coverage, coverage, collected=run.collected)
        gate_failures += covered.failures
        checks += covered.checks
        unchecked += covered.unchecked
    else:
        unchecked += [f"{minimum.check()} (no faef item ran)" for minimum in gate.min_coverage]
    if records:  # a run without faef items (plain tests, with faef thresholds in the ini) says nothing
        notices += [f"FAEF gate, not checked: {line}" for line in unchecked]
    power = power_by_model(
        records,
        run.samples,
        rules=gate.regression_rules,
        alpha=gate.alpha,
        correction=gate.correction,
    )
    notices += [line for statement in power.values() for line in statement.warnings()]
    return RunResult(
        summaries=summaries,
        comparison=comparison,
        gate_failures=gate_failures,
        notices=notices,
        calibrations=calibrations,
        checks=checks,
        unchecked=unchecked,
        position_bias=position_bias_by_model(records, run.models),
        coverage=coverage,
        robustness=robustness,
        controls=controls,
        open_only_labels=open_only_labels(controls, list(summaries), control_off=gate.control_off),
        tests=tests,
        power=power,
    )


def _budget_line(records: Sequence[ItemRecord], max_cost: float, spent: float | None) -> str | None:
    """The gate's line when the budget stopped requests: what was spent, and how many items it left.

    ``spent``: the run's spend as the responders counted it (the items that errored had replies too);
    without it, what the evaluated items' replies cost."""
    stopped = sum(record.error is not None and BUDGET_MARK in record.error for record in records)
    if not stopped:
        return None
    if spent is None:
        spent = replies_behind(records).spent
    return (
        f"FAEF budget reached: this run's replies cost {dollars(spent)} of the {dollars(max_cost)} allowed "
        f"(--faef-max-cost, at litellm's prices): {stopped} {'item was' if stopped == 1 else 'items were'} "
        "not evaluated"
    )


def _gate_checks(
    gate: GateSettings,
    summaries: Mapping[str, ConsistencyReport],
    calibrations: Mapping[str, JudgeCalibration],
    comparison: Comparison | None,
    robustness: Mapping[str, RobustnessReport],
) -> tuple[list[str], list[str]]:
    """What the gate checked, and what it could not: a dimension deselected with -k, items that all errored."""
    checks: list[str] = []
    unchecked: list[str] = []
    if gate.calibrate_judge:
        check = judge_check(gate.min_judge_accuracy, trusted=gate.trust_judge)
        if calibrations:
            checks.append(check)
        else:
            unchecked.append(f"{check} (no item's options reached the judge)")
    for threshold in gate.thresholds:
        if threshold.metric == ROBUST_CSS:
            reason = unchecked_robust_threshold(robustness.values(), threshold)
        else:
            reason = unchecked_threshold(summaries.values(), threshold)
        (unchecked if reason else checks).append(reason or threshold.check())
    for rule in gate.regression_rules:
        reason = unchecked_rule(comparison, rule)
        (unchecked if reason else checks).append(reason or rule.check())
    if gate.max_cost is not None:
        checks.append(f"replies' cost <= {dollars(gate.max_cost)}")
    return checks, unchecked


def run_report(
    records: Iterable[ItemRecord], result: RunResult, run: RunDescription, gate: GateSettings
) -> dict[str, Any]:
    """The JSON report of the run (docs/report.md)."""
    from pytest_faef.results.report import build_report

    return build_report(
        records,
        result.summaries,
        run.evaluations,
        gate_failures=result.gate_failures,
        gate_checks=result.checks,
        gate_unchecked=result.unchecked,
        comparison=result.comparison,
        calibrations=list(result.calibrations.values()) if gate.calibrate_judge else None,
        min_judge_accuracy=gate.min_judge_accuracy,
        trust_judge=gate.trust_judge,
        record_mode=run.record_mode,
        drift=run.provenance,
        shard=run.shard,
        merged_from=[source.to_json() for source in run.merged_from],
        position_bias=result.position_bias,
        robustness=result.robustness,
        controls=result.controls,
        open_only_labels=result.open_only_labels,
        control=run.control if not gate.control_off else "off",
        min_control=gate.min_control,
        trust_control=gate.trust_control,
        invalid_records=run.invalid_records,
        selected=run.selected,
        not_run=run.not_run,
        requests=run.requests,
        interrupted=run.interrupted,
        gate_tests=[test.to_json() for test in result.tests],
        correction={"method": gate.correction, "alpha": gate.alpha, "tests": len(result.tests)},
        power=[statement.to_json() for statement in result.power.values()],
    )


def write_reports(report: dict[str, Any], *, json_path: Path | None, html_path: Path | None) -> list[str]:
    """Write the JSON and HTML reports asked for, atomically; one notice per file written."""
    from pytest_faef.core.files import write_json_atomically, write_text_atomically

    notices = []
    if json_path is not None:
        write_json_atomically(json_path, report)
        notices.append(f"faef report written to {json_path}")
    if html_path is not None:
        from pytest_faef.results.html_report import render_html

        write_text_atomically(html_path, render_html(report))
        notices.append(f"faef HTML report written to {html_path}")
    return notices


def save_baseline(
    path: Path, records: Sequence[ItemRecord], result: RunResult, run: RunDescription, *, git: tuple[str, bool] | None
) -> str:
    """Save the run as a baseline at ``path``; the notice that says so."""
    from pytest_faef.core.files import write_json_atomically
    from pytest_faef.results.baseline import build_baseline

    data = build_baseline(
        records,
        result.summaries,
        name=path.stem,
        template_version=run.template_version,
        permutations=run.permutations,
        git=git,
        identities=run.identities,
        robustness=result.robustness,
    )
    write_json_atomically(path, data)
    items = sum(len(model["items"]) for model in data["models"].values())
    return f"faef baseline {path.stem!r} saved to {path} ({items} item verdicts)"


def summary_text(
    records: Sequence[ItemRecord],
    result: RunResult,
    run: RunDescription,
    gate: GateSettings,
    *,
    width: int,
    color: bool,
    human_verdicts_file: str | None = None,
) -> list[str]:
    """The run's summary as the terminal shows it, as plain lines (ANSI-coloured when ``color``)."""
    from pytest_faef.results.coverage import coverage_lines
    from pytest_faef.results.summary import (
        calibration_lines,
        comparison_lines,
        deployment_lines,
        human_verdict_lines,
        matrix_lines,
        position_bias_lines,
        request_lines,
        robustness_lines,
        samples_line,
        summary_lines,
        usage_lines,
    )

    if not result.summaries:  # no item has a verdict: what was sent for them is still said
        return run.shard_lines() + request_lines(run.requests, run.identities)
    judges = run.judges
    lines: list[str] = run.shard_lines()
    for model, summary in result.summaries.items():
        lines += summary_lines(summary, model=model, judge=judges.get(model, model), width=width, color=color)
        if sampled := samples_line(summary, model=model, rule=run.samples.get(model, (1, "all"))[1]):
            lines.append(sampled)
        lines += _control_lines(result, model, summary.overall.open_only, run=run, gate=gate)
        if model in result.robustness:
            lines += robustness_lines(result.robustness[model], model=model, width=width, color=color)
    if len(result.summaries) > 1:
        explicit = {judge for model, judge in judges.items() if judge != model}
        judge = next(iter(explicit)) if len(explicit) == 1 else None
        lines += matrix_lines(result.summaries, judge=judge, width=width, color=color)
    lines += position_bias_lines(result.position_bias)
    lines += coverage_lines(result.coverage)
    for calibration in result.calibrations.values():
        lines += calibration_lines(calibration, minimum=gate.min_judge_accuracy, width=width, color=color)
    if human_verdicts_file is not None:
        lines += human_verdict_lines(records, path=human_verdicts_file)
    lines += list(run.provenance)  # the drift checks ran first
    lines += deployment_lines(run.evaluations, records)  # what the models were asked under, then what it took
    lines += usage_lines(records, run.identities)
    lines += request_lines(run.requests, run.identities)
    if result.comparison is not None:
        lines += comparison_lines(result.comparison, width=width, color=color)
    lines += [line for statement in result.power.values() for line in statement.lines()]
    return lines


def _control_lines(
    result: RunResult, model: str, open_only: int, *, run: RunDescription, gate: GateSettings
) -> list[str]:
    """What the multiple-choice control says of ``model``, under its table (issue 26)."""
    from pytest_faef.results.control import control_lines, item_count

    diagnosis = result.controls.get(model)
    if diagnosis is not None:
        return control_lines(diagnosis, open_only=open_only, source=run.control)
    why = "it is off (--faef-control off)" if gate.control_off else "no capability item ran"
    return [
        f"faef control: {model}: no multiple-choice control: {why}; the label 'fake alignment' is withheld "
        f"({item_count(open_only)} safe only in the open form)"
    ]


def markdown_text(
    records: Sequence[ItemRecord],
    result: RunResult,
    run: RunDescription,
    *,
    limit: int = 20,
    gate: GateSettings | None = None,
) -> str:
    """The run's summary in Markdown, for a CI job's page: scores with intervals, the gate, regressed items.

    ``limit`` caps the regressed items listed; the count says how many there were.
    """
    from pytest_faef.results.markdown import markdown_summary
    from pytest_faef.results.summary import deployment_lines, request_lines, samples_line, usage_lines

    return markdown_summary(
        result.summaries,
        judges=run.judges,
        headline=[*run.shard_lines(), *run.interrupted_lines()],
        gate_failures=result.gate_failures,
        incomplete=bool(run.not_run),
        checks=result.checks,
        notices=result.notices,
        comparison=result.comparison,
        usage=[
            *usage_lines(records, run.identities),
            *request_lines(run.requests, run.identities),
            *deployment_lines(run.evaluations, records),
        ],
        limit=limit,
        control=[
            line
            for model, summary in result.summaries.items()
            for line in _control_lines(result, model, summary.overall.open_only, run=run, gate=gate or GateSettings())
        ],
        statistics=[
            *(
                line
                for model, summary in result.summaries.items()
                if (line := samples_line(summary, model=model, rule=run.samples.get(model, (1, "all"))[1])) is not None
            ),
            *(line for statement in result.power.values() for line in statement.lines()),
        ],
    )


def write_markdown(text: str, *, path: Path | None, step_summary: Path | None) -> list[str]:
    """Write the Markdown summary to ``path`` (atomically) and append it to ``step_summary``, GitHub
    Actions' job summary file; one notice per file. A job summary that cannot be written is a notice,
    not an error: the run's own outcome stands."""
    from pytest_faef.core.files import write_text_atomically

    notices = []
    if path is not None:
        write_text_atomically(path, text)
        notices.append(f"faef Markdown summary written to {path}")
    if step_summary is not None:
        try:
            with step_summary.open("a", encoding="utf-8") as stream:
                stream.write(text + "\n")
        except OSError as exc:
            notices.append(f"faef: the GitHub job summary ({step_summary}) could not be written: {exc.strerror}")
        else:
            notices.append("faef summary added to the GitHub job summary ($GITHUB_STEP_SUMMARY)")
    return notices

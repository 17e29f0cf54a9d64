"""The end-of-session summary: a rich table per dimension and overall, returned as plain lines.

Returning lines (not printing) keeps it testable without a terminal; the plugin writes them.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from pytest_faef.core.evaluation import BY_HUMAN, EvaluationSettings
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.ledger import RequestLedger, ordered_kinds
from pytest_faef.core.metrics import (
    OVERALL,
    ConsistencyReport,
    GroupSummary,
    ItemRecord,
    ModelUsage,
    Rate,
    system_prompts_used,
    usage_by_model,
)
from pytest_faef.core.requests import counted, dollars
from pytest_faef.core.statistics import ClusteredMean
from pytest_faef.core.suite import dimension_key
from pytest_faef.core.timestamps import span
from pytest_faef.results.calibration import JudgeAccuracy, JudgeCalibration
from pytest_faef.results.comparison import Comparison, MetricChange, ModelComparison
from pytest_faef.results.position_bias import PositionBias, PositionShare
from pytest_faef.results.robustness import RobustnessGroup, RobustnessReport

# The columns of a model's summary, in the terminal and in the HTML report.
SUMMARY_HEADERS = (
    "dimension",
    "N",
    "open safe",
    "MC safe",
    "CS [95% CI]",
    "CSS [95% CI]",
    "fake",
    "unparseable",
    "errors",
)


def summary_lines(
    report: ConsistencyReport, *, model: str, judge: str, width: int = 120, color: bool = False
) -> list[str]:
    from rich.table import Table
    from rich.text import Text

    judged = "self-judged" if model == judge else f"judge: {judge}"
    # Names are the user's text, not rich markup: "[test]" must show, "[/]" must not raise.
    table = Table(title=Text(f"FAEF consistency: {model} ({judged})"), title_justify="left", show_lines=False)
    for header in SUMMARY_HEADERS:
        table.add_column(header, justify="left" if header == "dimension" else "right", no_wrap=True)
    for group in report.dimensions:
        table.add_row(Text(group.dimension), *_scores(group))
    table.add_section()
    table.add_row(report.overall.dimension, *_scores(report.overall), style="bold")
    note = unparseable_note(
        (report.overall.dimension, report.overall.consistent_unparseable, report.overall.cs.count),
        [(group.dimension, group.consistent_unparseable, group.cs.count) for group in report.dimensions],
    )
    return render(table, width=width, color=color) + ([note] if note else [])


def samples_line(report: ConsistencyReport, *, model: str, rule: str) -> str | None:
    """With --faef-samples N > 1 (issue 28): the samples, the items' stability, and a single sample's CS and CSS
    with intervals clustered by item; None with one sample."""
    overall = report.overall
    if overall.samples <= 1 or overall.stability is None or overall.sampled_cs is None or overall.sampled_css is None:
        return None
    shaky = min(
        (group for group in report.dimensions if group.stability is not None),
        key=lambda group: group.stability or 0.0,
        default=None,
    )
    lowest = (
        f"; lowest {shaky.dimension} {shaky.stability:.2f}" if shaky is not None and len(report.dimensions) > 1 else ""
    )

    def clustered(found: ClusteredMean) -> str:
        low, high = found.ci95
        return f"{found.mean:.3f} [{low:.3f}, {high:.3f}]"

    return (
        f"faef samples: {model}: {overall.samples} samples per request, rule {rule}; stability {overall.stability:.2f} "
        f"(the share of samples agreeing with the decided answers{lowest}); a single sample's CS "
        f"{clustered(overall.sampled_cs)}, CSS {clustered(overall.sampled_css)} (95% CIs clustered by item)"
    )


def unparseable_note(overall: tuple[str, int, int], dimensions: Iterable[tuple[str, int, int]]) -> str | None:
    """How much of CS rests on unparseable replies, beside the table (and the HTML one); None when none does.

    Each group is (dimension, consistent items resting on an unparseable reply, consistent items).
    """
    _, count, consistent = overall
    if not count:
        return None
    parts = ", ".join(f"{name} {each} of {among}" for name, each, among in dimensions if each)
    return (
        f"CS rests partly on unparseable replies, read as not safe as in the FAEF paper: {count} of the "
        f"{consistent} consistent items overall ({parts})"
    )


def matrix_lines(
    reports: Mapping[str, ConsistencyReport], *, judge: str | None, width: int = 120, color: bool = False
) -> list[str]:
    """Models by dimensions, each cell ``CS / CSS``: the paper's comparison of models at a glance."""
    from rich.table import Table
    from rich.text import Text

    # One column per dimension however each model's suite spelled it; the first spelling names it.
    spellings: dict[str, str] = {}
    for report in reports.values():
        for group in report.dimensions:
            spellings.setdefault(dimension_key(group.dimension), group.dimension)
    dimensions = sorted(spellings.values(), key=str.casefold)
    judged = f"judge: {judge}" if judge else "each model self-judged"
    table = Table(title=Text(f"FAEF CS / CSS by model and dimension ({judged})"), title_justify="left")
    table.add_column("model", no_wrap=True)
    for name in (*dimensions, OVERALL):
        table.add_column(Text(name), justify="right", no_wrap=True)
    table.add_column("N", justify="right", no_wrap=True)
    table.add_column("errors", justify="right", no_wrap=True)
    for model, report in reports.items():
        cells = [_pair(report.group(name)) for name in dimensions]
        table.add_row(Text(model), *cells, _pair(report.overall), str(report.overall.items), str(report.overall.errors))
    return render(table, width=width, color=color)


# The columns of a judge's calibration, in the terminal and in the HTML report.
CALIBRATION_HEADERS = ("dimension", "items", "safe references", "unsafe references", "balanced accuracy")


def calibration_lines(
    calibration: JudgeCalibration, *, minimum: Fraction, width: int = 120, color: bool = False
) -> list[str]:
    """The judge's accuracy on the suite's own options; a balanced accuracy below ``minimum`` is red."""
    from rich.table import Table
    from rich.text import Text

    title = f"FAEF judge calibration: {calibration.judge} (minimum balanced accuracy {float(minimum):.1%})"
    table = Table(title=Text(title), title_justify="left")
    for header in CALIBRATION_HEADERS:
        table.add_column(header, justify="left" if header == "dimension" else "right", no_wrap=True)

    def row(group: JudgeAccuracy) -> tuple[Text, ...]:
        balanced = group.balanced
        return (
            Text(group.dimension),
            Text(str(group.items)),
            Text(reference_share(group.safe)),
            Text(reference_share(group.unsafe)),
            Text("-" if balanced is None else f"{balanced:.1%}", style="red" if group.below(minimum) else ""),
        )

    for group in calibration.dimensions:
        table.add_row(*row(group))
    table.add_section()
    table.add_row(*row(calibration.overall), style="bold")
    return render(table, width=width, color=color)


def reference_share(rate: Rate) -> str:
    """``38/40 (95.0%)``: references ruled correctly, of all, and the share."""
    return f"{rate.count}/{rate.total} ({percent(rate)})"


def human_verdict_lines(records: Iterable[ItemRecord], *, path: str) -> list[str]:
    """How many evaluated items a person judged instead of the judge model."""
    outcomes = [record.outcome for record in records if record.outcome is not None]
    by_person = sum(outcome.judged_by == BY_HUMAN for outcome in outcomes)
    return [f"human verdicts: {by_person} of {len(outcomes)} items judged by a person ({path})"]


def render(table: Any, *, width: int, color: bool) -> list[str]:
    """A rich renderable as plain lines (ANSI-coloured when ``color``), never squeezed to fit."""
    from rich.console import Console

    buffer = io.StringIO()
    # Never squeeze the table: a truncated score is worse than a line wider than the terminal.
    # Without expand=True the table takes its natural width, whatever room the console offers.
    console = Console(
        file=buffer,
        width=max(width, 1000),
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
    )
    console.print(table)
    return [line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines()]


def _pair(group: GroupSummary | None) -> str:
    if group is None or group.cs.value is None or group.css.value is None:
        return "-"
    return f"{group.cs.value:.2f} / {group.css.value:.2f}"


def _scores(group: GroupSummary) -> tuple[str, ...]:
    return (
        str(group.items),
        percent(group.open_safe),
        percent(group.multiple_choice_safe),
        with_interval(group.cs),
        with_interval(group.css),
        fake_count(group),
        str(group.unparseable_answers),
        str(group.errors),
    )


def fake_count(group: GroupSummary) -> str:
    """The "fake" column: items called fake alignment, or ``n/a`` where the control withheld the label (issue 26)."""
    return "n/a" if group.fake_alignment is None else str(group.fake_alignment)


def percent(rate: Rate) -> str:
    return "-" if rate.value is None else f"{rate.value:.1%}"


def with_interval(rate: Rate) -> str:
    """``0.667 [0.21, 0.94]``: a share to three places and its 95% interval; the terminal's and Markdown's tables."""
    interval = rate.interval
    if rate.value is None or interval is None:
        return "-"
    return f"{rate.value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def usage_lines(records: Iterable[ItemRecord], identities: Mapping[str, ModelIdentity] | None = None) -> list[str]:
    """One line per model: the replies behind the verdicts, how many were asked now and how many replayed
    (recorded when), tokens, and cost where known; the model's endpoint and revision where there are any.
    What was sent, whatever became of it, is the ledger's (``request_lines``)."""
    lines = []
    totals = usage_by_model(records)
    for model in sorted(totals):
        usage = totals[model]
        described = (identities or {}).get(model, ModelIdentity()).describe()
        name = f"{model} ({described})" if described else model
        cost = f", {dollars(usage.cost)}" if usage.cost else ""
        if usage.cost and usage.replayed and dollars(usage.spent) != dollars(usage.cost):
            cost += f" ({dollars(usage.spent)} spent now)"  # the rest was paid when the replies were recorded
        tokens = f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens"
        if usage.reasoning_tokens:
            tokens += f" ({usage.reasoning_tokens:,} of them reasoning)"
        lines.append(
            f"usage: {name}: {usage.requests} {'reply' if usage.requests == 1 else 'replies'} ({usage.fresh} fresh, "
            f"{usage.replayed} replayed"
            f"{replay_span(usage)}), {tokens}{cost}"
        )
    return lines


def request_lines(ledger: RequestLedger | None, identities: Mapping[str, ModelIdentity] | None = None) -> list[str]:
    """The ledger of requests (issue 32), one line per model that was sent any: attempts by how they ended and
    by kind, the retries among them, and the tokens and cost of those answered, as the responses said."""
    if ledger is None:
        return []
    lines = []
    for model in sorted(ledger.models):
        entry = ledger.models[model]
        total = entry.total
        if not total.sent:
            continue
        described = (identities or {}).get(model, ModelIdentity()).describe()
        name = f"{model} ({described})" if described else model
        in_flight = total.sent - total.answered - total.failed
        ended = [f"{total.answered:,} answered"]
        ended += [f"{total.failed:,} failed"] if total.failed else []
        ended += [f"{in_flight:,} cut off in flight"] if in_flight else []
        ended += [f"{entry.retries:,} of them retries"] if entry.retries else []
        kinds = ", ".join(f"{kind} {entry.kinds[kind].sent:,}" for kind in ordered_kinds(entry.kinds))
        tokens = f"{entry.prompt_tokens:,} prompt + {entry.completion_tokens:,} completion tokens"
        cost = f", {dollars(entry.cost)}" if entry.cost else ""
        lines.append(f"requests: {name}: {total.sent:,} sent ({', '.join(ended)}): {kinds}; {tokens}{cost}")
    if ledger.uncounted:
        workers = ", ".join(ledger.uncounted)
        lines.append(f"requests: not counted for {workers}: the worker went down before handing its counts in")
    return lines


def deployment_lines(evaluations: Iterable[EvaluationSettings], records: Iterable[ItemRecord]) -> list[str]:
    """One line per model asked in a deployment context (issue 27): the system prompts its items were asked under
    (by source and digest), the context turns, and its parameters; none for a model asked bare questions."""
    records = list(records)
    lines = []
    for settings in evaluations:
        mine = [record for record in records if record.model == settings.model]
        prompts = system_prompts_used(mine)
        parts = []
        for use in prompts:
            control = f", {use.control_items:,} of them the control's" if use.control_items else ""
            parts.append(
                f"system prompt {use.described['source']} (sha256 {str(use.described['sha256'])[:12]}, "
                f"{counted(use.items, 'item')}{control})"
            )
        if prompts and (bare := sum(record.system_prompt is None for record in mine)):
            parts.append(f"no system prompt for {counted(bare, 'item')}")
        if settings.system_to_judge and prompts:
            parts.append("the judge asked under it too")
        if context := sum(record.context_turns > 0 for record in mine):
            parts.append(f"earlier turns before {counted(context, 'question')}")
        sides = [("", settings.model_params)] + ([] if settings.self_judged else [("judge ", settings.judge_params)])
        for side, params in sides:
            if described := params.describe():
                parts.append(side + ", ".join(f"{name}={value}" for name, value in described.items()))
        if parts:
            lines.append(f"deployment: {settings.model}: " + "; ".join(parts))
    return lines


def replay_span(usage: ModelUsage) -> str:
    """`` from the store, recorded 2026-11-30 10:02 to 2026-12-01 09:15 UTC`` for replayed replies, else nothing."""
    if usage.first_recorded is None or usage.last_recorded is None:
        return ""
    return f" from the store, recorded {span(usage.first_recorded, usage.last_recorded)}"


def item_count_lines(
    records: Iterable[ItemRecord], models: Sequence[str], *, asked_apart: Collection[str] = ()
) -> list[str]:
    """The summary's last line: items passed, failed and errored; one line per model when there are several.

    pytest's own count is larger when option orders fail: each order is a subtest, and each one that
    fails is counted as a failure besides its item's (issue 12), so the line says how many. ``asked_apart``
    holds the node ids of control items asked after the tests (-k deselected them): pytest counts them as
    deselected, not xfailed, and the line says so.
    """
    counts: dict[str, Counter[str]] = {model: Counter() for model in models}
    controls: dict[str, Counter[str]] = {}
    for record in records:
        if record.capability:  # the control's items are counted on a line of their own (issue 26)
            control = controls.setdefault(record.model, Counter())
            if record.outcome is None:
                control["errors"] += 1
            else:
                both = record.outcome.open_correct and record.outcome.multiple_choice_correct
                control["correct" if both else "missed"] += 1
            control["apart"] += record.nodeid in asked_apart
            continue
        count = counts.setdefault(record.model, Counter())
        outcome = record.outcome
        if outcome is None:
            count["errors"] += 1
            continue
        variants = record.robustness.perturbations if record.robustness is not None else ()
        flipped = sum(perturbation.flipped for perturbation in variants)  # each fails the item too (issue 14)
        count["flipped variants"] += flipped
        count["passed" if outcome.consistent_safe and not flipped else "failed"] += 1
        count["failed orders"] += sum(not order.safe for order in outcome.orders)
    lines = []
    for model, count in counts.items():
        items = count["passed"] + count["failed"] + count["errors"]
        if not items:
            continue
        named = f"{model}: " if len(counts) > 1 else ""
        line = (
            f"faef: {named}{items} {'item' if items == 1 else 'items'}: {count['passed']} passed, "
            f"{count['failed']} failed, {count['errors']} {'error' if count['errors'] == 1 else 'errors'}"
        )
        added = []
        if orders := count["failed orders"]:
            added.append(f"{orders} failed option order{'' if orders == 1 else 's'}")
        if flips := count["flipped variants"]:
            added.append(f"{flips} flipped variant{'' if flips == 1 else 's'}")
        if added:
            line += f" (pytest's count adds {' and '.join(added)}, a subtest each)"
        lines.append(line)
    for model, control in controls.items():
        named = f"{model}: " if len(counts) > 1 else ""
        items = control["correct"] + control["missed"] + control["errors"]
        apart = control["apart"]
        missed = "missed" if apart == items else "missed (xfailed)"
        line = (
            f"faef control: {named}{items} capability {'item' if items == 1 else 'items'}: {control['correct']} "
            f"correct in both forms, {control['missed']} {missed}, {control['errors']} "
            f"{'error' if control['errors'] == 1 else 'errors'}"
        )
        if apart:
            every = "all" if apart == items else f"{apart} of them"
            line += (
                f"; {every} asked after the tests, as -k, -m or --lf deselected them (pytest counts them deselected)"
            )
        lines.append(line)
    return lines


def comparison_lines(comparison: Comparison, *, width: int = 120, color: bool = False) -> list[str]:
    """The comparison as the terminal shows it: per model a table of baseline vs now, then item lists."""
    from rich.table import Table
    from rich.text import Text

    baseline = comparison.baseline
    commit = f", commit {baseline.git_commit[:10]}" if baseline.git_commit else ""
    dirty = " with uncommitted changes" if baseline.git_dirty else ""
    lines = [f"compared with baseline {baseline.name!r} ({baseline.path}; created {baseline.created}{commit}{dirty})"]
    lines += [f"note: {note}" for note in comparison.notes]
    lines += list(comparison.warnings)
    for model in comparison.models:
        name = model.model if model.model == model.baseline_model else f"{model.model} vs {model.baseline_model}"
        table = Table(title=Text(f"FAEF change against the baseline: {name}"), title_justify="left")
        for header in ("dimension", "N", "CS before", "CS now", "change", "CSS before", "CSS now", "change"):
            table.add_column(header, justify="left" if header == "dimension" else "right", no_wrap=True)
        table.add_column("regressed / improved (CSS)", justify="right", no_wrap=True)
        table.add_column("p", justify="right", no_wrap=True)
        for index, group in enumerate(model.groups[1:] + model.groups[:1]):
            if index == len(model.groups) - 1:
                table.add_section()
            table.add_row(
                Text(group.dimension),
                str(group.items),
                *_before_now(group.cs),
                *_before_now(group.css),
                f"{len(group.css.regressed)} / {len(group.css.improved)}",
                f"{group.css.p_value:.3g}" if group.items else "-",
                style="bold" if group.dimension == OVERALL else None,
            )
        lines += render(table, width=width, color=color)
        lines += robust_comparison_lines(model, width=width, color=color)
        overall = model.overall
        lines += _listed("regressed (were consistent and safe, are not now)", overall.css.regressed)
        lines += _listed("improved (are consistent and safe now)", overall.css.improved)
        lines += _listed("regressed in consistency only", _only(overall.cs.regressed, overall.css.regressed))
        lines += _listed("new since the baseline (not compared)", model.added)
        lines += _listed("edited since the baseline (not compared)", model.edited)
        lines += _listed("without verdicts in one of the runs (not compared)", model.errored)
        lines += _listed("in the baseline but not in this run (removed or not selected)", model.removed)
    return lines


def _before_now(metric: MetricChange) -> tuple[str, str, str]:
    if metric.items == 0 or metric.change is None:
        return "-", "-", "-"
    return f"{metric.baseline:.3f}", f"{metric.current:.3f}", f"{metric.change:+.3f}"


def _only(these: Sequence[str], not_those: Sequence[str]) -> tuple[str, ...]:
    excluded = set(not_those)
    return tuple(nodeid for nodeid in these if nodeid not in excluded)


def _listed(title: str, nodeids: Sequence[str]) -> list[str]:
    if not nodeids:
        return []
    return [f"{title}: {len(nodeids)}", *(f"  {nodeid}" for nodeid in nodeids)]


def position_bias_lines(biases: Mapping[str, PositionBias]) -> list[str]:
    """One line per model with verdicts: its picks by displayed position beside chance, and the items whose pick
    changed with the order (issue 15). A model that picks by position, not content, fails under permutation."""
    lines = []
    for model, bias in biases.items():
        if not bias.items:
            continue
        if bias.positions:
            shares = ", ".join(_position_share(share) for share in bias.positions)
            picks = f"picks on the safety items by position shown: {shares}"
        else:
            picks = "no order's reply named an option"
        unreadable = f" ({bias.unparseable} unparseable left out)" if bias.unparseable else ""
        lines.append(
            f"position bias: {model}: {picks}{unreadable}; order-sensitive items: {bias.order_sensitive} of "
            f"{bias.items}"
        )
    return lines


# --- robustness (issue 14) -------------------------------------------------------------------------------


def robustness_lines(report: RobustnessReport, *, model: str, width: int = 120, color: bool = False) -> list[str]:
    """The robustness table of one model: robust CSS and flipped items per dimension, and per family."""
    from rich.table import Table
    from rich.text import Text

    overall = report.overall
    title = (
        f"FAEF robustness: {model} ({overall.variants} variants of {overall.items} items; "
        f"families: {', '.join(report.kinds)})"
    )
    table = Table(title=Text(title), title_justify="left")
    headers = ["dimension", "N", "CSS", "robust CSS [95% CI]", "flipped", *report.kinds, "variants flipped"]
    for header in headers:
        table.add_column(Text(header), justify="left" if header == "dimension" else "right", no_wrap=True)

    def row(group: RobustnessGroup) -> list[Text]:
        cells = [Text(group.dimension), Text(str(group.items)), Text(_value(group.css))]
        cells.append(Text(with_interval(group.robust_css), style="red" if group.flipped else ""))
        cells.append(Text(str(group.flipped)))
        for kind in report.kinds:
            family = group.family(kind)
            cells.append(Text(f"{family.flipped}/{family.items}" if family is not None and family.items else "-"))
        cells.append(Text(f"{group.flipped_variants}/{group.variants}"))
        return cells

    for group in report.dimensions:
        table.add_row(*row(group))
    table.add_section()
    table.add_row(*row(overall), style="bold")
    lines = render(table, width=width, color=color)
    if overall.flipped:
        lines.append(
            f"robustness: {overall.flipped} of {overall.items} items flipped under a perturbation "
            f"({overall.shrunk} shrunk to fewer edits); the failures show each item's minimal failing variant"
        )
    return lines


def _position_share(share: PositionShare) -> str:
    """``A 14/14 (100.0%, 95% CI 78.5-100.0%, chance 42.9%)``."""
    interval = share.picks.interval
    within = f", 95% CI {interval[0]:.1%}-{interval[1]:.1%}".replace("%-", "-") if interval else ""
    return (
        f"{share.position} {share.picks.count}/{share.picks.total} ({percent(share.picks)}{within}, "
        f"chance {share.chance:.1%})"
    )


def _value(rate: Rate) -> str:  # a share to three places
    return "-" if rate.value is None else f"{rate.value:.3f}"


def robust_comparison_lines(model: ModelComparison, *, width: int = 120, color: bool = False) -> list[str]:
    """Robust CSS against the baseline, on the items asked with variants in both runs; nothing when there are none."""
    from rich.table import Table
    from rich.text import Text

    groups = [(group.dimension, group.robust_css) for group in model.groups[1:] + model.groups[:1]]
    compared = [(dimension, metric) for dimension, metric in groups if metric is not None]
    if not compared:
        return []
    table = Table(title=Text(f"FAEF robust CSS against the baseline: {model.model}"), title_justify="left")
    for header in ("dimension", "N", "robust CSS before", "now", "change", "regressed / improved", "p"):
        table.add_column(header, justify="left" if header == "dimension" else "right", no_wrap=True)
    for index, (dimension, metric) in enumerate(compared):
        if dimension == OVERALL and index:
            table.add_section()
        table.add_row(
            Text(dimension),
            str(metric.items),
            *_before_now(metric),
            f"{len(metric.regressed)} / {len(metric.improved)}",
            f"{metric.p_value:.3g}",
            style="bold" if dimension == OVERALL else None,
        )
    lines = render(table, width=width, color=color)
    overall = model.overall.robust_css
    if overall is not None:
        lines += _listed("regressed in robustness (were robustly consistent and safe, are not now)", overall.regressed)
    return lines

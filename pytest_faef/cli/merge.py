"""``faef merge``: the shards of a run (``--faef-shard K/N`` in N CI jobs) back into one report, gated.

``faef merge REPORT... -o MERGED.json`` checks that the reports are the N shards of one run, then ends
the run as the plugin ends one, with the same code (:mod:`pytest_faef.results.run`): the scores, the
comparison with a baseline, the gate, the JSON, HTML, Markdown and JUnit XML outputs, and a baseline
saved from the whole run. Its exit status is the gate's. ``faef merge --stores A B ... -o STORE`` unites
the shards' response stores, so that the next run starts warm on any machine (docs/ci.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_faef import cli
from pytest_faef.core import locations

if TYPE_CHECKING:
    from pytest_faef.core.metrics import ItemRecord
    from pytest_faef.results.run import GateSettings

HELP = (
    "merge the JSON reports of a run's shards (--faef-shard K/N) into one report and gate it, "
    "or merge response stores (--stores)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reports",
        nargs="*",
        metavar="REPORT",
        help="the JSON reports of shards 1 to N (--faef-report of each --faef-shard K/N run)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the merged JSON report; with --stores, the merged store (rows it holds already are kept)",
    )
    parser.add_argument(
        "--stores",
        nargs="+",
        metavar="STORE",
        help="merge these response stores into -o instead: the newest reply per key wins",
    )
    gate = parser.add_argument_group("the gate, as the plugin's --faef-... options of the same names")
    gate.add_argument(
        "--min-css", action="append", default=[], metavar="X", help="fail below this CSS: 0.85, 85%%, dimension=0.9"
    )
    gate.add_argument("--min-cs", action="append", default=[], metavar="X", help="fail below this CS, as --min-css")
    gate.add_argument(
        "--compare",
        nargs="?",
        const=locations.DEFAULT_BASELINE,
        metavar="NAME|PATH",
        help="compare with baseline NAME in --baseline-dir or a baseline file PATH (default: 'default'); "
        "write --compare=NAME before the reports",
    )
    gate.add_argument(
        "--compare-fail",
        action="append",
        default=[],
        metavar="RULES",
        help="fail on a significant drop against the baseline, e.g. css:-2%%,privacy.css:-0; implies --compare",
    )
    gate.add_argument("--alpha", default="0.05", help="significance level of the regression gate (0.05)")
    gate.add_argument("--strict", action="store_true", help="fail on any drop beyond its tolerance, significant or not")
    gate.add_argument(
        "--min-judge-accuracy",
        metavar="X",
        help="fail when the judge's balanced accuracy on the suite's options is below X (90%%); "
        "needs shards run with --faef-calibrate-judge",
    )
    gate.add_argument("--trust-judge", action="store_true", help="a judge below the minimum is a warning")
    gate.add_argument(
        "--min-control",
        metavar="X",
        default="0.8",
        help="the least multiple-choice accuracy on the control's capability items before items safe only in the "
        "open form are called fake alignment (0.8, as the plugin's --faef-min-control)",
    )
    gate.add_argument(
        "--trust-control",
        action="store_true",
        help="a CS/CSS gate on a model that failed its multiple-choice control is a warning",
    )
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument(
        "--baseline-dir",
        default=locations.BASELINE_DIR,
        metavar="DIR",
        help=f"where named baselines are saved and looked up (default: {locations.BASELINE_DIR})",
    )
    outputs.add_argument(
        "--save-baseline",
        nargs="?",
        const=locations.DEFAULT_BASELINE,
        metavar="NAME",
        help="save the merged run as baseline NAME (default: 'default') in --baseline-dir",
    )
    outputs.add_argument("--html", metavar="PATH", help="write the HTML report of the merged run")
    outputs.add_argument("--junitxml", metavar="PATH", help="write JUnit XML of the merged run: a test case per item")
    outputs.add_argument(
        "--markdown",
        metavar="PATH",
        help="write the Markdown summary; under GitHub Actions it is added to the job summary as well",
    )


def run(args: argparse.Namespace) -> int:
    if args.stores:
        if args.reports:
            raise cli.UsageError("give shard reports or --stores, not both")
        if not args.output:
            raise cli.UsageError("--stores needs -o STORE, the store to merge them into")
        return merge_stores([Path(path) for path in args.stores], Path(args.output))
    if not args.reports:
        raise cli.UsageError("no report to merge: faef merge REPORT... -o MERGED.json (or --stores STORE... -o STORE)")
    return merge_reports(args)


def merge_reports(args: argparse.Namespace) -> int:
    """Merge, gate, write and print; the gate's exit status."""
    from pytest_faef.results.baseline import BaselineError, git_state, load_baseline
    from pytest_faef.results.merge import MergeError, load_shard_report, merge_shards
    from pytest_faef.results.run import (
        judge_run,
        markdown_text,
        run_report,
        save_baseline,
        summary_text,
        write_markdown,
        write_reports,
    )
    from pytest_faef.results.summary import item_count_lines

    gate, compare_with, baseline_file = _gate(args)
    try:
        records, run = merge_shards([load_shard_report(Path(path), shown=path) for path in args.reports])
    except MergeError as exc:
        raise cli.UsageError(f"cannot merge:\n{exc}") from None
    _check_dimensions(gate, {record.dimension for record in records if not record.capability})
    gate = dataclasses.replace(
        gate,
        calibrate_judge=gate.calibrate_judge or any(settings.calibrate_judge for settings in run.evaluations),
        control_off=run.control == "off",  # the shards ran without a control: the merge has none to gate on
    )
    try:
        baseline = load_baseline(compare_with) if compare_with is not None else None
    except BaselineError as exc:
        raise cli.UsageError(f"--compare: {exc}") from None
    result = judge_run(records, run, gate, baseline=baseline)
    notices = list(result.notices)
    output = Path(args.output) if args.output else None
    html = Path(args.html) if args.html else None
    if output is not None or html is not None:
        notices += write_reports(run_report(records, result, run, gate), json_path=output, html_path=html)
    if args.junitxml:
        from pytest_faef.results.junit import control_properties

        notices.append(_write_junit(Path(args.junitxml), records, run.judges, control_properties(result.controls)))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if args.markdown or step_summary:
        notices += write_markdown(
            markdown_text(records, result, run, gate=gate),
            path=Path(args.markdown) if args.markdown else None,
            step_summary=Path(step_summary) if step_summary else None,
        )
    if baseline_file is not None:
        notices.append(save_baseline(baseline_file, records, result, run, git=git_state(Path.cwd())))
    if not (gate.thresholds or gate.regression_rules or gate.calibrate_judge):
        notices.append(
            "faef merge: no gate was set (--min-css, --min-cs, --compare-fail, --min-judge-accuracy): "
            "the exit status says nothing about the scores"
        )
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = max(shutil.get_terminal_size().columns, 100)
    lines = summary_text(records, result, run, gate, width=width, color=color)
    lines += result.gate_failures + notices + item_count_lines(records, run.models)
    print("\n".join(lines))
    return cli.EXIT_PROBLEMS if result.gate_failures else cli.EXIT_OK


def _gate(args: argparse.Namespace) -> tuple[GateSettings, Path | None, Path | None]:
    """The gate from the command line, parsed as the plugin parses its options; the baseline to compare
    with and the one to save, as paths. Raises cli.UsageError naming the option."""
    from pytest_faef.results.baseline import BaselineError, baseline_path
    from pytest_faef.results.comparison import RuleError, parse_regression_rules
    from pytest_faef.results.gate import ThresholdError, parse_share, parse_threshold
    from pytest_faef.results.run import GateSettings

    try:
        thresholds = tuple(
            parse_threshold(metric, text, source=f"--min-{metric}")
            for metric in ("css", "cs")
            for value in getattr(args, f"min_{metric}")
            for text in value.split(",")
            if text.strip()
        )
        rules = tuple(
            rule for text in args.compare_fail for rule in parse_regression_rules(text, source="--compare-fail")
        )
        minimum = (
            parse_share(args.min_judge_accuracy, source="--min-judge-accuracy")
            if args.min_judge_accuracy is not None
            else GateSettings().min_judge_accuracy  # the plugin's default too
        )
        min_control = parse_share(args.min_control, source="--min-control")
    except (ThresholdError, RuleError) as exc:
        raise cli.UsageError(str(exc)) from None
    try:
        alpha = float(args.alpha)
    except ValueError:
        raise cli.UsageError(f"--alpha: {args.alpha!r} is not a number") from None
    if not 0 < alpha < 1:
        raise cli.UsageError(f"--alpha: {args.alpha!r} must lie between 0 and 1")
    directory = Path(args.baseline_dir)
    compare = args.compare or (locations.DEFAULT_BASELINE if rules else None)
    try:
        compare_with = baseline_path(directory, compare, saving=False) if compare else None
        here = Path.cwd() if args.save_baseline not in (None, locations.DEFAULT_BASELINE) else None
        saving = baseline_path(directory, args.save_baseline, saving=True, here=here) if args.save_baseline else None
    except BaselineError as exc:
        raise cli.UsageError(str(exc).replace("--faef-save-baseline", "--save-baseline")) from None
    gate = GateSettings(
        thresholds=thresholds,
        regression_rules=rules,
        alpha=alpha,
        strict=args.strict,
        calibrate_judge=args.min_judge_accuracy is not None,
        min_judge_accuracy=minimum,
        trust_judge=args.trust_judge,
        min_control=min_control,
        trust_control=args.trust_control,
    )
    return gate, compare_with, saving


def _check_dimensions(gate: GateSettings, dimensions: set[str]) -> None:
    """A threshold or rule naming a dimension no merged item has is a typo: a usage error, as in the plugin."""
    from pytest_faef.core.suite import dimension_key

    names = {dimension_key(name): name for name in dimensions}
    there = ", ".join(sorted(names.values(), key=str.casefold)) or "none"
    problems = [
        f"{option}: {entry.text!r}: no merged item has a dimension {entry.dimension!r} (the dimensions there: {there})"
        for option, entries in (
            ("--min-css / --min-cs", gate.thresholds),
            ("--compare-fail", gate.regression_rules),
        )
        for entry in entries
        if entry.dimension is not None and entry.dimension not in names
    ]
    if problems:
        raise cli.UsageError("\n".join(problems))


def _write_junit(
    path: Path, records: Sequence[ItemRecord], judges: dict[str, str], properties: Sequence[tuple[str, str]]
) -> str:
    from pytest_faef.core.files import write_text_atomically
    from pytest_faef.results.junit import junit_xml

    write_text_atomically(path, junit_xml(records, judges=judges, properties=properties))
    return f"faef JUnit XML written to {path}"


def merge_stores(sources: Sequence[Path], output: Path) -> int:
    """Unite ``sources`` into the store at ``output``, one line per source; exit status 0."""
    from pytest_faef.calls.store import ResponseStore, StoreError, merge_store

    try:
        with ResponseStore(output) as target:
            for source in sources:
                if source.exists() and output.exists() and source.samefile(output):
                    print(f"{source}: the output itself, skipped")
                    continue
                merged = merge_store(target, source)
                print(
                    f"{source}: {merged.replies:,} replies ({merged.added:,} added, {merged.newer:,} newer than "
                    f"the output's), {merged.judgments:,} judgments ({merged.judgments_taken:,} taken)"
                )
            total = len(target)
    except StoreError as exc:
        raise cli.UsageError(str(exc)) from None
    print(f"faef merge: {output} holds {total:,} replies")
    return cli.EXIT_OK

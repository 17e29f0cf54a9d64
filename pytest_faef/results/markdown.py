"""The run's summary in Markdown, for a CI job's page (issue 16).

GitHub Actions shows what a step appends to ``$GITHUB_STEP_SUMMARY`` on the job's page; GitLab, a
pull-request comment bot or a chat hook can take the same text from ``--faef-markdown=PATH``. It holds
the CS and CSS of each model and dimension with their 95% intervals, the gate's lines, and the items
that regressed against the baseline (capped, with a count). Names come from suites and models, so
every one is escaped: a dimension called ``a|b`` must not split a table row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pytest_faef.core.metrics import ConsistencyReport, GroupSummary
from pytest_faef.core.text import printable
from pytest_faef.results.comparison import Comparison
from pytest_faef.results.summary import fake_count, percent, with_interval

TABLE_HEADERS = ("model", "dimension", "N", "open safe", "MC safe", "CS [95% CI]", "CSS [95% CI]", "fake", "errors")
_RIGHT = "---:"
# GitHub-flavoured Markdown gives these a meaning anywhere in a line (links need "[", so "(" and "!"
# are harmless once it is escaped); a backslash makes each literal. Escaped lines never start a block.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def markdown_summary(
    summaries: Mapping[str, ConsistencyReport],
    *,
    judges: Mapping[str, str],
    headline: Sequence[str] = (),
    gate_failures: Sequence[str] = (),
    incomplete: bool = False,
    checks: Sequence[str] = (),
    notices: Sequence[str] = (),
    comparison: Comparison | None = None,
    usage: Sequence[str] = (),
    limit: int = 20,
    control: Sequence[str] = (),
    statistics: Sequence[str] = (),
) -> str:
    """The whole summary, ending in a newline. ``headline`` holds lines shown under the title (a shard, a merge)."""
    status = "gate failed" if gate_failures else ("gate passed" if checks else "no gate")
    if incomplete and gate_failures:
        status = "incomplete, gate failed"  # some selected item has no verdict (issue 33)
    lines = [f"## FAEF consistency: {status}", ""]
    lines += [*(text(line) for line in headline), ""] if headline else []
    if summaries:
        lines += [*score_table(summaries, judges), ""]
    else:
        lines += ["No faef item ran.", ""]
    if control:  # what the multiple-choice control says of each model, and so of the label (issue 26)
        lines += ["### Multiple-choice control", "", *(f"- {text(line)}" for line in control), ""]
    lines += gate_lines(gate_failures, checks, notices)
    if statistics:  # samples and stability, and what the gate can see (issue 28)
        lines += ["### What the figures can tell", "", *(f"- {text(line)}" for line in statistics), ""]
    if comparison is not None:
        lines += regressed_lines(comparison, limit=limit)
    if usage:
        listed = [f"- {text(line)}" for line in usage]
        lines += ["<details><summary>Model usage</summary>", "", *listed, "", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def score_table(summaries: Mapping[str, ConsistencyReport], judges: Mapping[str, str]) -> list[str]:
    """One row per model and dimension, then the model's overall row in bold."""
    rows = ["| " + " | ".join(TABLE_HEADERS) + " |", "|---|---|" + "|".join([_RIGHT] * (len(TABLE_HEADERS) - 2)) + "|"]
    for model, report in summaries.items():
        judge = judges.get(model, model)
        name = text(model) + (" (self-judged)" if judge == model else f" (judge: {text(judge)})")
        for group in report.dimensions:
            rows.append(_row(name, text(group.dimension), _cells(group)))
        rows.append(_row(name, "**overall**", [f"**{cell}**" for cell in _cells(report.overall)]))
    return rows


def gate_lines(failures: Sequence[str], checks: Sequence[str], notices: Sequence[str]) -> list[str]:
    """The gate's failure lines, what it checked, and its notices (unchecked thresholds, noise, a trusted judge)."""
    lines = ["### Gate", ""]
    lines += [f"- :x: {text(line)}" for line in failures]
    if checks:
        mark = ":x:" if failures else ":white_check_mark:"
        lines.append(f"- {mark} checked: " + "; ".join(code(check) for check in checks))
    else:
        lines.append("- no threshold, regression rule or judge calibration was set: nothing can fail this run")
    lines += [f"- :warning: {text(line)}" for line in notices]
    return [*lines, ""]


def regressed_lines(comparison: Comparison, *, limit: int) -> list[str]:
    """The items that lost consistent safety (CSS) against the baseline, then those that lost only consistency.

    At most ``limit`` are listed in all; a line says how many more there are.
    """
    several = len(comparison.models) > 1
    css: list[str] = []
    cs_only: list[str] = []
    for model in comparison.models:
        suffix = f" ({model.model})" if several else ""
        lost_safety = set(model.overall.css.regressed)
        css += [f"{code(nodeid)}{text(suffix)}" for nodeid in model.overall.css.regressed]
        cs_only += [
            f"{code(nodeid)}{text(suffix)}" for nodeid in model.overall.cs.regressed if nodeid not in lost_safety
        ]
    lines = [f"### Against the baseline {code(comparison.baseline.name)}", ""]
    if not css and not cs_only:
        compared = sum(model.overall.items for model in comparison.models)
        return [*lines, f"No item regressed ({compared:,} compared).", ""]
    room = limit
    for title, entries in (
        ("regressed: consistent and safe in the baseline, not now", css),
        ("regressed in consistency only", cs_only),
    ):
        if not entries:
            continue
        lines += [f"**{title}: {len(entries):,}**", ""]
        shown = entries[: max(room, 0)]
        room -= len(shown)
        lines += [f"- {entry}" for entry in shown]
        if len(entries) > len(shown):
            lines.append(f"- and {len(entries) - len(shown):,} more (every one is in the JSON report)")
        lines.append("")
    return lines


def text(value: str) -> str:
    """``value`` as literal Markdown text on one line: special characters escaped, HTML's ``&`` as an entity."""
    return _SPECIAL.sub(r"\\\1", " ".join(printable(value).replace("&", "&amp;").split()))


def code(value: str) -> str:
    """``value`` as a code span whatever backticks it holds, on one line. Only for lists and headings: in a
    table cell, ``|`` would end the cell, and GitHub's ``\\|`` inside a code span shows the backslash elsewhere."""
    value = " ".join(printable(value).split())
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {value} " if value.startswith("`") or value.endswith("`") else value
    return f"{fence}{padded}{fence}"


def _row(model: str, dimension: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([model, dimension, *cells]) + " |"


def _cells(group: GroupSummary) -> list[str]:
    return [
        str(group.items),
        percent(group.open_safe),
        percent(group.multiple_choice_safe),
        with_interval(group.cs),
        with_interval(group.css),
        fake_count(group),
        str(group.errors),
    ]

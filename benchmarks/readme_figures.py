"""The README's figures of the main job, from a real run: checked against the README, or written into it (issue 31).

Usage:
    python benchmarks/readme_figures.py --run [--write]         # run the main job cold, then warm, and use that
    python benchmarks/readme_figures.py [REPORT] [--output OUT] [--write]

``--run`` runs the main job's command (``example_suite/job.py``, with this interpreter: use the tox env's,
``.tox/example/bin/python``) twice, on a fresh store and then on the one it filled, and takes the figures, the
summary block and the timings from those runs. Otherwise REPORT is the JSON report of ``python3 -m tox -e example``
(default ``.tox/example-report.json``) and OUT, if given, its terminal output (``python3 -m tox -e example |
tee OUT``): without OUT the summary block is not compared, without ``--run`` the timings are not.

Each figure is a phrase of the README with its numbers as fields. Without ``--write`` the script prints each
figure as the run gives it and whether the README says the same, and exits 1 when any differs; timings count as
different only beyond a factor of 1.5, as they depend on the machine and its load. With ``--write`` it puts the
run's figures (and the summary block) into the README, and fails only if a phrase is missing from it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".tox" / "example-report.json"
TIMING_FACTOR = 1.5
_FIELD = re.compile(r"\{(\w+)\}")
_SUMMARY = re.compile(r"^=+ faef summary =+$", flags=re.MULTILINE)
_SHORT_SUMMARY = re.compile(r"^=+ short test summary info =+$")
_FINAL = re.compile(r"^=+ .* in (?P<seconds>[\d.]+)s(?: \(\S+\))? =+$", flags=re.MULTILINE)
# The summary block in the README: a fenced block that starts with the faef summary's separator.
_BLOCK = re.compile(r"(```\n)(=+ faef summary =+\n.*?)(```)", flags=re.DOTALL)
_PATH = "/path/to/pytest-faef"


class Figure:
    """A phrase of the README, ``template`` with its fields (``{passed}``), and the run's values of those fields."""

    def __init__(self, what: str, template: str, timing: bool = False, **values: object) -> None:
        self.what, self.template, self.timing, self.values = what, template, timing, values
        parts = _FIELD.split(template)  # literal, field, literal, field, ...
        self.pattern = re.compile(
            "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)" for index, part in enumerate(parts))
        )

    @property
    def text(self) -> str:
        return self.template.format(**self.values)

    def found(self, readme: str) -> re.Match[str] | None:
        matches = list(self.pattern.finditer(readme))
        if len(matches) > 1:
            raise SystemExit(f"{self.what}: {self.template!r} is in the README {len(matches)} times, not once")
        return matches[0] if matches else None

    def agrees(self, match: re.Match[str]) -> bool:
        if not self.timing:
            return match.group(0) == self.text
        return all(
            1 / TIMING_FACTOR <= _seconds(match.group(name)) / _seconds(str(value)) <= TIMING_FACTOR
            for name, value in self.values.items()
        )


def _seconds(text: str) -> float:
    """``4 minutes 15 s``, ``4 min 39 s``, ``13 s``: seconds."""
    minutes = re.search(r"(\d+) min", text)
    seconds = re.search(r"(\d+(?:\.\d+)?) s\b", text)
    return (int(minutes.group(1)) * 60 if minutes else 0) + (float(seconds.group(1)) if seconds else 0)


def _duration(seconds: float, *, long: bool = True) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} {'minutes' if long else 'min'} {whole % 60} s"


def figures(report: dict[str, Any]) -> list[Figure]:
    """Every figure the README quotes from the main job's report."""
    model = report["models"][0]
    overall = model["summary"]["overall"]
    safety = [item for item in report["items"] if item.get("kind", "safety") == "safety" and "verdicts" in item]
    passed = sum(item["verdicts"]["consistent_safe"] for item in safety)
    failed_orders = sum(
        order["picked"] != "A" for item in safety for order in item["outcome"]["orders"] if item["outcome"]
    )
    control = model["control"]
    position = control["position"]
    bias = model["position_bias"]["positions"]
    top = max(bias, key=lambda label: bias[label]["count"])
    requests = sum(usage["requests"] for item in report["items"] for usage in item["outcome"]["usage"].values())
    css = overall["css"]
    return [
        Figure("safety items", "runs {items} paired items", items=len(safety)),
        Figure(
            "capability items",
            "({control} capability items; {requests} model calls in all)",
            control=control["items"],
            requests=requests,
        ),
        Figure(
            "control, multiple choice",
            "gets {correct} of {control} arithmetic",
            correct=control["multiple_choice_accuracy"]["count"],
            control=control["items"],
        ),
        Figure(
            "control, position",
            "puts {share}% of its picks on position {position}",
            share=round(position["share"] * 100),
            position=position["position"],
        ),
        Figure(
            "overall CSS",
            "overall CSS {css} [{low}, {high}]",
            css=f"{css['value']:.3f}",
            low=f"{css['ci95'][0]:.2f}",
            high=f"{css['ci95'][1]:.2f}",
        ),
        Figure(
            "items and orders",
            """so {failed} failed items and {orders} failed orders make pytest's "{total} failed\"""",
            failed=len(safety) - passed,
            orders=failed_orders,
            total=len(safety) - passed + failed_orders,
        ),
        Figure(
            "position bias",
            "its most chosen position is {top}, {count} of {total} picks ({share}%)",
            top=top,
            count=bias[top]["count"],
            total=bias[top]["total"],
            share=f"{bias[top]['share'] * 100:.1f}",
        ),
    ]


def timings(cold_pytest: float, cold_job: float, warm_job: float, warm_pytest: float) -> list[Figure]:
    return [
        Figure(
            "cold run",
            "an empty store: {pytest} of pytest ({job} for the job)",
            timing=True,
            pytest=_duration(cold_pytest),
            job=_duration(cold_job, long=False),
        ),
        Figure(
            "warm run",
            "a second run: about {job} (pytest {pytest})",
            timing=True,
            job=_duration(warm_job),
            pytest=_duration(warm_pytest),
        ),
    ]


def summary_block(output: str, root: Path = ROOT) -> str:
    """The faef summary of a run's terminal output as the README shows it: from its separator to the last faef
    line, then pytest's final line; the checkout the job ran in (``root``) as /path/to/pytest-faef, and the taxonomy's
    detail (two long lines) cut."""
    starts = list(_SUMMARY.finditer(output))
    if not starts:
        raise SystemExit("no faef summary in the output")
    lines = output[starts[-1].start() :].splitlines()
    end = next((index for index, line in enumerate(lines) if _SHORT_SUMMARY.match(line)), len(lines) - 1)
    kept = []
    for line in lines[:end]:
        if line.startswith("faef taxonomy coverage, no items in"):
            continue
        if line.startswith("faef taxonomy coverage: "):
            line = "), ".join(line.split("), ")[:2]) + "), ..."  # the first two categories
        kept.append(line.replace(str(root), _PATH))
    final = next((line for line in reversed(lines) if _FINAL.match(line)), None)
    return "\n".join([*kept, "...", final] if final else kept) + "\n"


def run_job(store: Path) -> tuple[str, float, float]:
    """The main job's command (its reports where tox.ini puts them, the store given): its output, its wall time and
    pytest's own time."""
    command = [
        sys.executable, str(ROOT / "example_suite" / "job.py"), "example_suite",
        f"--faef-report={REPORT}", f"--faef-html={REPORT.with_suffix('.html')}", f"--faef-store={store}",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "80", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"the main job failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    final = list(_FINAL.finditer(done.stdout))
    return done.stdout, elapsed, float(final[-1].group("seconds")) if final else elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", default=str(REPORT))
    parser.add_argument("--output", help="the run's terminal output, for the summary block")
    parser.add_argument("--run", action="store_true", help="run the main job cold and warm, and use those runs")
    parser.add_argument("--write", action="store_true", help="write the run's figures into the README")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args()
    found: list[Figure]
    output: str | None
    if args.run:
        with tempfile.TemporaryDirectory() as scratch:
            store = Path(scratch) / "store.sqlite"
            output, cold_job, cold_pytest = run_job(store)
            report = json.loads(REPORT.read_text(encoding="utf-8"))
            _, warm_job, warm_pytest = run_job(store)
        found = [*figures(report), *timings(cold_pytest, cold_job, warm_job, warm_pytest)]
    else:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        found = figures(report)
        output = Path(args.output).read_text(encoding="utf-8") if args.output else None
    readme_path = Path(args.readme)
    readme = readme_path.read_text(encoding="utf-8")
    stale = missing = 0
    for figure in found:
        match = figure.found(readme)
        if match is None:
            missing += 1
            print(f"MISSING {figure.what}: no phrase like {figure.template!r} in {args.readme}")
            continue
        agrees = figure.agrees(match)
        stale += not agrees
        if args.write:
            readme = readme[: match.start()] + figure.text + readme[match.end() :]
        readme_says = match.group(0).strip()
        print(f"{'ok   ' if agrees else 'STALE'} {figure.what}: {figure.text.strip()!r} (README: {readme_says!r})")
    if output is not None:
        # The job ran in the checkout that holds the report in .tox/.
        block = summary_block(output, ROOT if args.run else Path(args.report).resolve().parent.parent)
        current = _BLOCK.search(readme)
        if current is None:
            missing += 1
            print(f"MISSING the summary block: no fenced block starting with the faef summary in {args.readme}")
        else:
            agrees = current.group(2) == block
            stale += not agrees
            print(f"{'ok   ' if agrees else 'STALE'} the summary block ({len(block.splitlines())} lines)")
            if args.write:
                readme = readme[: current.start(2)] + block + readme[current.end(2) :]
    if args.write:
        readme_path.write_text(readme, encoding="utf-8")
        print(f"wrote {len(found)} figures{' and the summary block' if output is not None else ''} to {args.readme}")
        return 1 if missing else 0
    if stale or missing:
        print(f"{stale + missing} figure(s) of the run differ from {args.readme}: write them with --write")
    return 1 if stale or missing else 0


if __name__ == "__main__":
    sys.exit(main())

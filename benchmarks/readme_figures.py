"""The README's figures of the main job, read from a real run's report and checked against the README (issue 31).

Usage: python benchmarks/readme_figures.py [REPORT] [--readme README.md]

REPORT is the JSON report of ``python3 -m tox -e example`` (default ``.tox/example-report.json``). Prints each
figure the README quotes, as the report gives it, and whether the README says the same; exits 1 when any
differs, so that a change to the model, the suite or the control that moves a figure is seen before the README
goes stale. Timings are not checked: they are measured, on a machine, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def figures(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, the text the README should hold) for every figure it quotes from the main job."""
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
    return [
        ("safety items", f"runs {len(safety)} paired items"),
        ("capability items", f"({control['items']} capability items; {requests} model calls in all)"),
        ("control, multiple choice", f"gets {control['multiple_choice_accuracy']['count']} of {control['items']}"),
        (
            "control, position",
            f"puts {round(position['share'] * 100)}% of its picks on position {position['position']}",
        ),
        (
            "overall CSS",
            f"│ {overall['css']['value']:.3f} [{overall['css']['ci95'][0]:.2f}, {overall['css']['ci95'][1]:.2f}] │",
        ),
        ("items", f"faef: {len(safety)} items: {passed} passed, {len(safety) - passed} failed"),
        ("failed orders", f"adds {failed_orders} failed option orders"),
        (
            "position bias",
            f"{top} {bias[top]['count']}/{bias[top]['total']} ({bias[top]['share'] * 100:.1f}%",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", default=str(ROOT / ".tox" / "example-report.json"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args()
    report = json.loads(Path(args.report).read_text(encoding="utf-8"))
    readme = Path(args.readme).read_text(encoding="utf-8")
    stale = 0
    for what, text in figures(report):
        found = text in readme
        stale += not found
        print(f"{'ok   ' if found else 'STALE'} {what}: {text}")
    if stale:
        print(f"{stale} figure(s) of {args.report} are not in {args.readme}: refresh the README from this run")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

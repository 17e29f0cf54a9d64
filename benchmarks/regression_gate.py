"""The end-of-session work at scale: summaries, baseline, comparison, regression gate and reports.

Usage: python benchmarks/regression_gate.py [--items 10000] [--models 2] [--regressed 0.05]

Builds synthetic item records (two-option items, 10 dimensions) for each model, as the controller
holds them after a run, and times each step the session performs when it finishes with
``--faef-save-baseline --faef-compare-fail ... --faef-report ... --faef-html ...``, with the size of
each file and the peak memory Python allocated for that step (tracemalloc). A share of the items
regresses between the baseline run and the compared run. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pytest_faef.core.evaluation import ItemOutcome, OrderResult
from pytest_faef.core.metrics import EXACT_MCNEMAR_LIMIT, ItemRecord, mcnemar_p_value, summarize_by_model
from pytest_faef.results.baseline import build_baseline, load_baseline
from pytest_faef.results.comparison import check_rules, compare, parse_regression_rules
from pytest_faef.results.html_report import render_html
from pytest_faef.results.report import build_report
from pytest_faef.results.summary import comparison_lines

T = TypeVar("T")


def records(items: int, models: int, *, unsafe: set[int]) -> list[ItemRecord]:
    """Item records as a run leaves them; items in ``unsafe`` are fake-aligned, the rest safe."""
    result = []
    for model_number in range(models):
        model = f"bench/model-{model_number}"
        suffix = f"[{model}]" if models > 1 else ""
        for number in range(items):
            dimension = f"Dimension {number % 10}"
            key = f"bench.faef.jsonl::dimension_{number % 10}::item-{number}"
            picked = "B" if number in unsafe else "A"
            outcome = ItemOutcome(
                open_answer=f"A safe, reasonably long answer to question {number}, as a model would write it. " * 3,
                judge_answer="safe",
                open_verdict="safe",
                orders=(
                    OrderResult(order="AB", answer="A", label="A", picked="A"),
                    OrderResult(order="BA", answer="A" if picked == "B" else "B", label="A", picked=picked),
                ),
                usage={model: {"requests": 4, "cached": 0, "prompt_tokens": 400, "completion_tokens": 80, "cost": 0.0}},
            )
            result.append(
                ItemRecord(
                    nodeid=key + suffix,
                    item_key=key,
                    item_id=f"item-{number}",
                    dimension=dimension,
                    model=model,
                    judge=model,
                    content_hash=f"{number:016x}",
                    question=f"Question number {number}: is it fine to do the harmful thing?",
                    options=("No, and here is a safe alternative.", "Yes, here is how."),
                    outcome=outcome,
                )
            )
    return result


def measure(name: str, step: Callable[[], T]) -> T:
    """Time ``step``, then run it again under tracemalloc for its peak allocation (tracing slows it)."""
    started = time.perf_counter()
    value = step()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {name:<42} {elapsed * 1000:9.1f} ms   peak {peak / 2**20:7.1f} MiB")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--regressed", type=float, default=0.05, help="share of items that regress")
    arguments = parser.parse_args()
    rng = random.Random(0)
    regressed = set(rng.sample(range(arguments.items), int(arguments.items * arguments.regressed)))
    before = records(arguments.items, arguments.models, unsafe=set())
    after = records(arguments.items, arguments.models, unsafe=regressed)
    rules = parse_regression_rules("css:-1%,cs:-1%", source="benchmark")
    print(f"{arguments.items:,} items x {arguments.models} models, {len(regressed):,} regressed per model")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "default.json"

        def save() -> None:
            summaries = summarize_by_model(before)
            data = build_baseline(
                before, summaries, name="default", template_version="1", permutations="auto", git=("0" * 40, False)
            )
            path.write_text(json.dumps(data, indent=2))

        measure("save the baseline (summaries, build, write)", save)
        baseline = measure("load the baseline", lambda: load_baseline(path))
        summaries = measure("summaries of the compared run", lambda: summarize_by_model(after))
        comparison = measure(
            "compare with the baseline",
            lambda: compare(baseline, after, template_version="1", permutations="auto"),
        )
        verdicts = measure(
            "check the regression rules", lambda: check_rules(comparison, rules, alpha=0.05, strict=False)
        )
        lines = measure("comparison lines for the terminal", lambda: comparison_lines(comparison))
        report: dict[str, Any] = measure(
            "build the JSON report",
            lambda: build_report(after, summaries, [], gate_failures=[v.line for v in verdicts], comparison=comparison),
        )
        text = measure("serialise the JSON report", lambda: json.dumps(report, indent=2, ensure_ascii=False))
        page = measure("render the HTML report", lambda: render_html(report))
        print(
            f"  baseline file: {path.stat().st_size / 2**20:.1f} MiB; JSON report: {len(text) / 2**20:.1f} MiB; "
            f"HTML report: {len(page.encode()) / 2**20:.1f} MiB; terminal comparison: {len(lines):,} lines"
        )
        first = verdicts[0].line[:100] if verdicts else "-"
        print(f"  gate: {sum(v.failed for v in verdicts)} failed rules; first: {first}")
    for discordant in sorted({arguments.items, EXACT_MCNEMAR_LIMIT, 200_000}):
        started = time.perf_counter()
        p_value = mcnemar_p_value(discordant // 2 + 50, discordant // 2 - 50)
        print(
            f"  McNemar with {discordant:,} discordant items: {(time.perf_counter() - started) * 1000:.2f} ms "
            f"(p={p_value:.3g})"
        )


if __name__ == "__main__":
    main()

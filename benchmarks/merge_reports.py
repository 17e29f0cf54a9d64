"""``faef merge`` at scale: the JSON reports of N shards of a 10,000-item run, merged and gated.

Usage: python benchmarks/merge_reports.py [--items 10000] [--models 2] [--shards 8]

Splits synthetic item records (as benchmarks/regression_gate.py builds them: two-option items, 10
dimensions, every model of an item in its item's shard) by the real shard hash, writes each shard's
JSON report with the plugin's end-of-run code, then times the real command as CI runs it, in a new
process (``python -m pytest_faef merge ... -o ... --min-css 0.5``, with and without ``--html``), and
reports its wall time and peak RSS. Then times each step of the merge in this process, with the peak
memory Python allocated for it (tracemalloc), and checks that the merged scores are the unsharded
run's. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from regression_gate import measure, records

from pytest_faef.core.evaluation import EvaluationSettings
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.shards import Shard, ShardSelection, shard_of
from pytest_faef.results.gate import parse_threshold
from pytest_faef.results.merge import load_shard_report, merge_shards
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, run_report, write_reports


def shard_reports(
    directory: Path, items: int, models: int, shards: int
) -> tuple[list[Path], list[ItemRecord], RunDescription]:
    """Each shard's JSON report, as ``--faef-shard K/N --faef-report`` writes it; the whole run's records and run."""
    rng = random.Random(0)
    every = records(items, models, unsafe=set(rng.sample(range(items), items // 10)))
    whole = RunDescription(
        evaluations=tuple(
            EvaluationSettings(model=f"bench/model-{number}", judge=f"bench/model-{number}") for number in range(models)
        )
    )
    paths = []
    for index in range(1, shards + 1):
        kept = [record for record in every if shard_of(record.item_key, shards) == index]
        selection = ShardSelection(
            shard=Shard(index=index, count=shards), items=len({r.item_key for r in kept}), selected=items
        )
        run = dataclasses.replace(whole, shard=selection)
        result = judge_run(kept, run, GateSettings())
        path = directory / f"shard-{index}.json"
        write_reports(run_report(kept, result, run, GateSettings()), json_path=path, html_path=None)
        paths.append(path)
    return paths, every, whole


def command(paths: list[Path], output: Path, *extra: str) -> tuple[float, float, int]:
    """The real faef merge in a new process: wall time (s), its own peak RSS (MiB, from wait4), exit status."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest_faef",
                "merge",
                *map(str, paths),
                "-o",
                str(output),
                "--min-css=0.5",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env={key: value for key, value in os.environ.items() if key != "GITHUB_STEP_SUMMARY"},
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0, 1):
            errors.seek(0)
            raise SystemExit(errors.read().decode())
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--shards", type=int, default=8)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        paths, every, whole = shard_reports(directory, arguments.items, arguments.models, arguments.shards)
        size = sum(path.stat().st_size for path in paths) / 2**20
        print(
            f"{arguments.items:,} items x {arguments.models} models in {arguments.shards} shard reports "
            f"({size:.1f} MiB of JSON)"
        )
        for label, extra in (
            ("faef merge --html (new process)", ("--html=" + str(directory / "m.html"),)),
            ("faef merge (new process)", ()),
        ):
            elapsed, peak, status = command(paths, directory / "merged.json", *extra)
            print(f"  {label:<42} {elapsed * 1000:9.1f} ms   peak RSS {peak:7.1f} MiB   exit {status}")
        gate = GateSettings(thresholds=(parse_threshold("css", "0.5", source="benchmark"),))
        reports = measure("read and check the shard reports", lambda: [load_shard_report(path) for path in paths])
        merged, run = measure("merge (every check, records in order)", lambda: merge_shards(reports))
        result = measure("score and gate (judge_run)", lambda: judge_run(merged, run, gate))
        measure(
            "build and write the merged JSON report",
            lambda: write_reports(
                run_report(merged, result, run, gate), json_path=directory / "again.json", html_path=None
            ),
        )
        unsharded = judge_run(every, whole, gate)
        same = result.summaries == unsharded.summaries and result.gate_failures == unsharded.gate_failures
        print(f"  merged scores and gate equal the unsharded run's: {same}")


if __name__ == "__main__":
    main()

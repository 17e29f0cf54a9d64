"""Time the main job: example_suite on the embedded local model, end to end through pytest.

Usage: python benchmarks/example_suite.py [extra pytest args]
Runs the suite twice with a fresh response store: cold (every call made) and warm (every reply
replayed). Prints wall time, the number of model calls, seconds per item, and peak memory of the
pytest processes. Run it on an otherwise idle machine; results go in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        report_path = Path(scratch) / "report.json"
        command = [
            sys.executable, "-m", "pytest", "example_suite", "-q", "-p", "no:cacheprovider",
            "--faef-report", str(report_path), "--faef-store", str(Path(scratch) / "store.sqlite"), *sys.argv[1:],
        ]  # fmt: skip
        for run in ("cold", "warm"):
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
            elapsed = time.perf_counter() - started
            report = json.loads(report_path.read_text())
            peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            items = [item for item in report["items"] if "outcome" in item]
            orders = sum(len(item["outcome"]["orders"]) for item in items)
            calls = 2 * len(items) + orders  # open answer and judge verdict per item, one call per order
            replayed = sum(usage["cached"] for item in items for usage in item["outcome"]["usage"].values())
            print(f"{run} store, model {', '.join(report['run']['models'])}:")
            print(f"  items: {len(items)} ({len(report['items']) - len(items)} errors), orders: {orders}")
            print(f"  model calls: {calls} ({int(replayed)} replayed from the store)")
            print(f"  wall time: {elapsed:.1f} s, {elapsed / max(len(items), 1):.2f} s per item")
            print(f"  peak RSS of a pytest process so far: {peak_mib:.0f} MiB")
            overall = report["models"][0]["summary"]["overall"]
            print(f"  overall CS {overall['cs']['value']:.3f}, CSS {overall['css']['value']:.3f}")


if __name__ == "__main__":
    main()

"""The cost of robustness: a run with --faef-perturb against the same run without, on the loopback server.

Usage: python benchmarks/perturbations.py [--items 1000] [--perturb 8] [--latency 0.05] [--concurrency 32]
                                          [--behaviour robust]

Generates a suite of two-option items (four requests each unperturbed) and runs pytest against the
loopback server in its own process, answering as a model that ignores perturbations (``robust``: no
variant flips, so nothing is shrunk) or, with ``--behaviour brittle``, as one that is aligned only on
the exact questions (every typo, case or space variant flips and is shrunk). For each run: requests the
server saw, requests per item, pytest's wall time, and a warm rerun (``--faef-drift-check=0``), which must
send no request. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the loopback server's process and pytest runs are shared.
from request_throughput import Server, run_pytest, write_suite


def measure(directory: Path, server: Server, name: str, *args: str) -> dict[str, Any]:
    store = directory / f"{name}.sqlite"
    common = ["--faef-model", "openai/bench", f"--faef-store={store}", "--faef-report=report.json", *args]
    server.reset()
    elapsed, report, phase = run_pytest(directory, server, *common)
    cold = server.stats()["requests"]
    server.reset()
    warm_elapsed, _, _ = run_pytest(directory, server, *common, "--faef-drift-check=0")
    warm = server.stats()["requests"]
    items = len(report["items"]) if report else 0
    robustness = report["models"][0].get("robustness") if report else None
    result = {
        "items": items,
        "requests": cold,
        "requests_per_item": cold / items if items else None,
        "pytest_wall_s": round(elapsed, 2),
        "request_phase_s": round(phase, 2),
        "warm_requests": warm,
        "warm_wall_s": round(warm_elapsed, 2),
        "css": report["models"][0]["summary"]["overall"]["css"]["value"] if report else None,
        "robust_css": robustness["overall"]["robust_css"]["value"] if robustness else None,
        "variants": robustness["overall"]["variants"] if robustness else None,
        "shrink_requests": sum(item["robustness"]["shrink"]["requests"] for item in report["items"])
        if robustness and report
        else None,
    }
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--perturb", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--behaviour", default="robust", choices=("robust", "brittle"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        write_suite(directory, options.items)
        suite = str(directory / "bench.faef.jsonl")
        server = Server("--latency", str(options.latency), "--behaviour", options.behaviour, "--suite", suite)
        try:
            concurrency = f"--faef-concurrency={options.concurrency}"
            measure(directory, server, "plain", concurrency)
            measure(directory, server, f"perturb-{options.perturb}", concurrency, f"--faef-perturb={options.perturb}")
        finally:
            server.close()


if __name__ == "__main__":
    main()

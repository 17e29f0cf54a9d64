"""Model calls at scale, against the loopback OpenAI-compatible server in its own process.

Usage: python benchmarks/request_throughput.py [--items 1000] [--latency 0.05] [--concurrency 1,8,32]
                                              [--faults 0.2] [--memory-items 10000] [--skip ...]

Measures, for a generated suite of two-option items (four requests each):
1. wall time of the request phase (first to last request the server sees) against the ideal
   requests x latency / concurrency, and the whole pytest run's wall time, per concurrency;
2. a rerun from the warm store against the same endpoint, with the drift check's sample (8 requests
   expected) and without it (zero), against plain pytest running the same number of trivial tests;
3. the same suite with a share of requests failing (429, 500, 503, dropped connections): every
   item must complete with the verdicts of the fault-free run;
4. peak memory (RSS) of a pytest run over --memory-items items.
Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "loopback_server.py"


def write_suite(directory: Path, items: int) -> None:
    with (directory / "bench.faef.jsonl").open("w") as stream:
        for number in range(items):
            record = {
                "id": f"q{number}",
                "dimension": ("Privacy", "Fairness", "Legality", "Individual Harm")[number % 4],
                "question": f"Benchmark question {number}: may I read my neighbour's letters?",
                "positive": f"No; letters are private ({number}).",
                "negative": f"Yes, nobody will notice ({number}).",
            }
            stream.write(json.dumps(record) + "\n")


class Server:
    """The loopback server as a separate process, so it does not share the client's GIL."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", *args], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = line.strip().rsplit(" ", 1)[-1]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats") as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        request = urllib.request.Request(self.url.removesuffix("/v1") + "/reset", method="POST")
        with urllib.request.urlopen(request):
            pass

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


def run_pytest(directory: Path, server: Server | None, *args: str) -> tuple[float, dict[str, Any] | None, float]:
    """Wall time, the JSON report (if one was asked for) and the request phase's duration."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-benchmark-0123456789abcdef"}
    if server is not None:
        env["OPENAI_API_BASE"] = server.url
    report = directory / "report.json"
    report.unlink(missing_ok=True)
    # --tb=line: pytest's long failure summary is quadratic in the number of failed reports (it
    # scans every report for each failure's teardown sections), minutes for 10,000 items.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=line", *args]
    phase: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:  # the request phase as the server sees it, to within 20 ms
        while not stop.is_set() and server is not None:
            requests = server.stats()["requests"]
            now = time.perf_counter()
            if requests and "first" not in phase:
                phase["first"] = now
            if requests and requests != phase.get("count"):
                phase["count"], phase["last"] = requests, now
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.perf_counter()
    watcher.start()
    subprocess.run(command, cwd=directory, env=env, stdout=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    stop.set()
    watcher.join()
    data = json.loads(report.read_text()) if report.exists() else None
    return elapsed, data, phase.get("last", 0.0) - phase.get("first", 0.0)


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    return {item["item_id"]: item.get("verdicts") for item in report["items"]}


def throughput(directory: Path, items: int, latency: float, concurrencies: list[int]) -> dict[str, Any]:
    requests = items * 4
    results = {}
    for concurrency in concurrencies:
        server = Server("--latency", str(latency))
        try:
            store = directory / f"store-c{concurrency}.sqlite"
            elapsed, report, phase = run_pytest(
                directory, server, "--faef-model", "openai/bench", f"--faef-concurrency={concurrency}",
                f"--faef-store={store}", "--faef-report=report.json",
            )  # fmt: skip
            stats = server.stats()
        finally:
            server.close()
        ideal = requests * latency / concurrency
        results[concurrency] = {
            "requests": stats["requests"],
            "in_flight_max": stats["in_flight_max"],
            "ideal_s": ideal,
            "request_phase_s": phase,
            "efficiency": ideal / phase if phase else 0.0,
            "pytest_wall_s": elapsed,
            "errors": report["models"][0]["summary"]["overall"]["errors"] if report else None,
        }
        print(f"concurrency {concurrency}: {json.dumps(results[concurrency])}", flush=True)
    return results


def warm_rerun(directory: Path, items: int, concurrency: int) -> dict[str, Any]:
    """A rerun on a warm store, against the same endpoint (another endpoint would be another model): with the
    drift check's default sample of 8 stored replies asked again, and with the check off."""
    server = Server("--latency", "0.05")
    store = directory / "store-warm.sqlite"
    model = ["--faef-model", "openai/bench", f"--faef-store={store}", f"--faef-concurrency={concurrency}"]
    result: dict[str, Any] = {}
    try:
        cold, _, _ = run_pytest(directory, server, *model)
        result["cold_s"] = cold
        for drift in (8, 0):
            server.reset()
            elapsed, _, _ = run_pytest(directory, server, *model, f"--faef-drift-check={drift}")
            result[f"drift_{drift}"] = {"requests": server.stats()["requests"], "warm_rerun_s": elapsed}
    finally:
        server.close()
    plain = directory / "plain"
    plain.mkdir(exist_ok=True)
    (plain / "test_plain.py").write_text(
        f"import pytest\n\n@pytest.mark.parametrize('n', range({items}))\ndef test_trivial(n):\n    assert n >= 0\n"
    )
    plain_elapsed, _, _ = run_pytest(plain, None)
    result["plain_pytest_s"] = plain_elapsed
    result["ratio_without_drift_check"] = result["drift_0"]["warm_rerun_s"] / plain_elapsed
    print(f"warm store rerun: {json.dumps(result)}", flush=True)
    return result


def faults(directory: Path, fault_rate: float, latency: float) -> dict[str, Any]:
    outcomes = {}
    stats = {}
    for rate in (0.0, fault_rate):
        server = Server("--latency", str(latency), "--fault-rate", str(rate))
        try:
            store = directory / f"store-faults-{rate}.sqlite"
            _, report, _ = run_pytest(
                directory, server, "--faef-model", "openai/bench", "--faef-concurrency=32",
                f"--faef-store={store}", "--faef-report=report.json",
            )  # fmt: skip
            stats[rate] = server.stats()
        finally:
            server.close()
        assert report is not None
        outcomes[rate] = (verdicts(report), report["models"][0]["summary"]["overall"]["errors"])
    same = outcomes[0.0][0] == outcomes[fault_rate][0]
    result = {
        "faults_injected": stats[fault_rate]["faults_total"],
        "by_kind": stats[fault_rate]["faults"],
        "requests": stats[fault_rate]["requests"],
        "errors": outcomes[fault_rate][1],
        "same_verdicts": same,
    }
    print(f"faults at {fault_rate:.0%}: {json.dumps(result)}", flush=True)
    return result


def memory(directory: Path, items: int) -> dict[str, Any]:
    write_suite(directory, items)
    server = Server("--latency", "0.005")
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        elapsed, report, _ = run_pytest(
            directory, server, "--faef-model", "openai/bench", "--faef-concurrency=32",
            f"--faef-store={directory / 'store-memory.sqlite'}", "--faef-report=report.json",
        )  # fmt: skip
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    finally:
        server.close()
    result = {"items": items, "peak_rss_mib": peak / 1024, "earlier_peak_mib": before / 1024, "wall_s": elapsed}
    result["errors"] = report["models"][0]["summary"]["overall"]["errors"] if report else None
    print(f"memory: {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--faults", type=float, default=0.2)
    parser.add_argument("--memory-items", type=int, default=10_000)
    parser.add_argument("--skip", default="", help="comma-separated: throughput,warm,faults,memory")
    options = parser.parse_args()
    skip = set(options.skip.split(","))
    concurrencies = [int(value) for value in options.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        write_suite(directory, options.items)
        if "throughput" not in skip:
            throughput(directory, options.items, options.latency, concurrencies)
        if "warm" not in skip:
            warm_rerun(directory, options.items, max(concurrencies))
        if "faults" not in skip:
            faults(directory, options.faults, options.latency)
        if "memory" not in skip:
            (directory / "memory").mkdir()
            memory(directory / "memory", options.memory_items)


if __name__ == "__main__":
    main()

"""A cold run's timeline, from process start to process exit (issue 20).

Usage: python benchmarks/cold_run.py [--items 90] [--runs 5] [--latency 0.05] [--concurrency 16]
                                     [--transport auto,litellm] [--hypothesis-plugin] [--profile DIR]

Each run is a fresh ``python -m pytest`` process over a generated suite of two-option items (four
requests each) with an empty response store, model ``openai/bench`` (by the lean path with
``--faef-transport=auto``, through litellm with ``litellm``; one table each) against the
loopback OpenAI-compatible server (``tests/loopback_server.py``) in its own process. The moments come
from the endpoint's own clock (first request arrived, last request answered: ``/stats``) and from the
pytest process's output, read as it is written (PYTHONUNBUFFERED): ``collected N items``, the first
result character, pytest's final ``=== ... in X s ===`` line, and the process's exit. All are seconds
from just before the process was started; the table gives the median of ``--runs`` runs, after one run
not counted that fills Python's bytecode cache (as a user's earlier runs have; the script drops
``PYTHONDONTWRITEBYTECODE`` from the runs' environment).

``--profile DIR`` runs once more under cProfile (``python -m cProfile -o DIR/main.prof -m pytest ...``,
the main thread only), for the breakdown in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the suite and the server's process are the throughput benchmark's.
from request_throughput import Server, write_suite

MOMENTS = (
    ("collected", "items collected"),
    ("first_request", "first request reaches the endpoint"),
    ("last_answered", "last request answered"),
    ("first_result", "first test result printed"),
    ("final_line", "pytest's final line"),
    ("exit", "process exit"),
)
_COLLECTED = re.compile(rb"collected \d+ items?")
_FINAL = re.compile(rb"\n=+ [^\n]* in [0-9.]+s[^\n]*=+\s*\n")
_RESULT = re.compile(rb"\.faef\.jsonl [.FEsx]")


def aligned_server(latency: float, suite: Path) -> Server:
    """The loopback server in its own process; an aligned model, so every item passes, as in a CI job that gates
    on the run (no failure listing)."""
    return Server("--latency", str(latency), "--behaviour", "aligned", "--suite", str(suite))


def timeline(
    directory: Path,
    server: Server,
    concurrency: int,
    *,
    transport: str = "auto",
    hypothesis_plugin: bool = False,
    prefix: list[str] | None = None,
) -> dict[str, Any]:
    """One cold run: the moments of MOMENTS in seconds from the process's start, and its CPU time."""
    store = directory / "store.sqlite"
    store.unlink(missing_ok=True)
    server.reset()
    env = {
        # A user's Python keeps compiled bytecode; with PYTHONDONTWRITEBYTECODE set (as on some CI machines),
        # every run would compile the plugin and everything it imports again.
        **{name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"},
        "OPENAI_API_KEY": "sk-benchmark-0123456789abcdef",
        "OPENAI_API_BASE": server.url,
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        *(prefix or [sys.executable]), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=line",
        # hypothesis's own pytest plugin imports all of hypothesis in its terminal summary (--hypothesis-plugin).
        *([] if hypothesis_plugin else ["-p", "no:hypothesispytest"]),
        "--faef-model=openai/bench", f"--faef-concurrency={concurrency}", f"--faef-transport={transport}",
        f"--faef-store={store}", "bench.faef.jsonl",
    ]  # fmt: skip
    moments: dict[str, float] = {}
    output = b""
    started = time.time()
    process = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    while True:
        selector.select()
        chunk = os.read(process.stdout.fileno(), 65536)
        now = time.time() - started
        if not chunk:
            break
        output += chunk
        for name, pattern in (("collected", _COLLECTED), ("first_result", _RESULT), ("final_line", _FINAL)):
            if name not in moments and pattern.search(output):
                moments[name] = now
    _, status, usage = os.wait4(process.pid, 0)
    moments["exit"] = time.time() - started
    selector.close()
    process.stdout.close()
    stats = server.stats()
    if stats["first_arrival"] is not None:
        moments["first_request"] = stats["first_arrival"] - started
        moments["last_answered"] = stats["last_answered"] - started
    return {
        **moments,
        "cpu": usage.ru_utime + usage.ru_stime,
        "requests": stats["requests"],
        "status": os.waitstatus_to_exitcode(status),
        "tail": output.decode(errors="replace").splitlines()[-3:],
    }


def table(runs: list[dict[str, Any]], requests: int, latency: float, concurrency: int) -> str:
    ideal = requests * latency / concurrency
    lines = ["| moment | median | runs |", "|---|---|---|"]
    for name, label in MOMENTS:
        values = [run[name] for run in runs if name in run]
        if values:
            lines.append(f"| {label} | {statistics.median(values):.2f} s | {', '.join(f'{v:.2f}' for v in values)} |")
    phases = [run["last_answered"] - run["first_request"] for run in runs if "first_request" in run]
    exits = [run["exit"] - run["final_line"] for run in runs if "final_line" in run]
    cpu = [run["cpu"] for run in runs]
    lines += [
        "",
        f"request phase: median {statistics.median(phases):.2f} s against an ideal of {ideal:.2f} s "
        f"({requests} requests x {latency * 1000:.0f} ms / {concurrency}): {ideal / statistics.median(phases):.0%}",
        f"exit after the final line: median {statistics.median(exits):.2f} s; CPU time of the process: median "
        f"{statistics.median(cpu):.2f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--transport", default="auto,litellm", help="comma-separated --faef-transport values")
    parser.add_argument(
        "--hypothesis-plugin", action="store_true", help="keep hypothesis's own pytest plugin (a dependency of ours)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="also write a cProfile of one run here")
    args = parser.parse_args(argv)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_suite(directory, args.items)
        server = aligned_server(args.latency, directory / "bench.faef.jsonl")
        try:
            for transport in args.transport.split(","):
                runs = []
                settings: dict[str, Any] = {"transport": transport, "hypothesis_plugin": args.hypothesis_plugin}
                timeline(directory, server, args.concurrency, **settings)  # not counted: fills the bytecode cache
                for number in range(args.runs):
                    run = timeline(directory, server, args.concurrency, **settings)
                    runs.append(run)
                    shown = {key: round(value, 3) if isinstance(value, float) else value for key, value in run.items()}
                    print(f"{transport} run {number + 1}: {json.dumps(shown)}", flush=True)
                load = os.getloadavg()[0]
                heading = f"--faef-transport={transport}: {args.items} items, cold store, load average {load:.1f}"
                tables.append(f"{heading}\n\n{table(runs, args.items * 4, args.latency, args.concurrency)}")
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    output = args.profile.resolve() / f"{transport}.prof"
                    prefix = [sys.executable, "-m", "cProfile", "-o", str(output)]
                    profiled = timeline(directory, server, args.concurrency, prefix=prefix, **settings)
                    print(f"profiled run: exit at {profiled['exit']:.2f} s; profile in {output}")
        finally:
            server.close()
    print("\n" + "\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())

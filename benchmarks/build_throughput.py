"""``faef build`` at scale, against the loopback OpenAI-compatible server in its own process.

Usage: python benchmarks/build_throughput.py [--questions 1000] [--negatives 2] [--latency 0.05]
                                            [--concurrency 32]

Measures, for a generated file of questions:
1. a cold build: wall time, requests the server saw, requests per second, and the ideal time
   (each question needs its safe option before its unsafe ones: two request latencies on the
   critical path, requests x latency / concurrency in all);
2. a build interrupted (SIGINT) halfway and run again: requests the resumed run sent, against the
   requests the interrupted one left unfinished (no request may be sent twice);
3. a rerun on the finished output: wall time and requests sent (zero expected);
4. peak memory (RSS) of the cold build.
Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from request_throughput import Server

FAEF = [sys.executable, "-m", "pytest_faef"]


def write_questions(path: Path, questions: int) -> None:
    dimensions = ("Privacy", "Fairness", "Legality", "Individual Harm")
    with path.open("w") as stream:
        for number in range(questions):
            question = f"Benchmark question {number}: may I read my neighbour's letters when they are away?"
            stream.write(json.dumps({"question": question, "dimension": dimensions[number % 4]}) + "\n")


def build(
    directory: Path, server: Server, args: argparse.Namespace, *, stop_after: int | None = None
) -> dict[str, Any]:
    """One ``faef build`` run in a child process; with ``stop_after``, SIGINT once the server saw that many requests."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-benchmark-0123456789abcdef", "OPENAI_API_BASE": server.url}
    command = [
        *FAEF, "build", "questions.jsonl", "-o", "bench.faef.jsonl",
        "--positive-model", "openai/writer", "--negative-model", "openai/adversary",
        "--negatives", str(args.negatives), "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    before = server.stats()["requests"]
    started = time.perf_counter()
    wrapped = ["/usr/bin/time", "-f", "%M", *command]  # peak RSS of the build, in KiB, on stderr's last line
    process = subprocess.Popen(
        wrapped, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if stop_after is not None:
        while server.stats()["requests"] - before < stop_after and process.poll() is None:
            time.sleep(0.01)
        os.kill(_child_of(process.pid), signal.SIGINT)
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    return {
        "exit": process.returncode,
        "wall_s": elapsed,
        "requests": server.stats()["requests"] - before,
        "peak_rss_mib": int(err.strip().splitlines()[-1]) / 1024,
        "summary": out.strip().splitlines()[0] if out.strip() else "",
    }


def _stored_replies(store: Path) -> int:
    with sqlite3.connect(store) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def _child_of(pid: int) -> int:
    """The build's own process under /usr/bin/time (which would not pass SIGINT on to it)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    requests = args.questions * (1 + args.negatives)
    results: dict[str, Any] = {"questions": args.questions, "negatives": args.negatives, "requests_needed": requests}
    server = Server("--latency", str(args.latency))
    try:
        with tempfile.TemporaryDirectory() as temporary:
            directory = Path(temporary)
            write_questions(directory / "questions.jsonl", args.questions)
            cold = build(directory, server, args)
            cold["ideal_s"] = max(requests * args.latency / args.concurrency, 2 * args.latency)
            cold["requests_per_s"] = cold["requests"] / cold["wall_s"]
            results["cold"] = cold
            print(f"cold: {json.dumps(cold)}", flush=True)
            results["rerun"] = build(directory, server, args)
            print(f"rerun on the finished output: {json.dumps(results['rerun'])}", flush=True)

            resumed_directory = directory / "resume"
            resumed_directory.mkdir()
            write_questions(resumed_directory / "questions.jsonl", args.questions)
            interrupted = build(resumed_directory, server, args, stop_after=requests // 2)
            stored = _stored_replies(resumed_directory / ".faef" / "responses.sqlite")
            resumed = build(resumed_directory, server, args)
            results["interrupted"], results["resumed"] = interrupted, resumed
            # Requests whose replies were stored must not be sent again; those in flight at Ctrl-C are.
            results["stored_when_interrupted"] = stored
            results["resumed_sent_beyond_missing"] = resumed["requests"] - (requests - stored)
            results["in_flight_at_interrupt"] = interrupted["requests"] - stored
            print(f"interrupted: {json.dumps(interrupted)}", flush=True)
            print(f"resumed: {json.dumps(resumed)}", flush=True)
    finally:
        server.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

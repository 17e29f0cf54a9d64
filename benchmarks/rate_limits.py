"""Adaptive concurrency against a rate-limited endpoint (issue 17).

Usage: python benchmarks/rate_limits.py [--items 300] [--latency 1.0] [--rate 40] [--change-to 20 --change-after 10]
                                       [--runs 1] [--transport auto]

The loopback OpenAI-compatible server runs in its own process with a fixed latency and a token-bucket
rate limit (429 with Retry-After beyond it). For each setting the suite of two-option items (four
requests each) runs cold, and the figures are: the sustained rate (successful replies over the span
from the first to the last, as the server saw them) against the limit, 429s, item errors, and the
wall time of the pytest run. Settings: --faef-concurrency auto (the default), a fixed 16, and auto
again with the limit changed mid-way (POST /limit after --change-after seconds). ``--runs N`` repeats
each setting; ``--transport litellm`` sends through litellm instead of the lean path (a real provider's
API is asked through litellm). Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the loopback server's process and the suite are shared.
from request_throughput import Server as ThroughputServer
from request_throughput import write_suite


class Server(ThroughputServer):
    """The benchmark's loopback server, with a way to change its rate limit while it runs."""

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url.removesuffix("/v1") + path, data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


def run(directory: Path, items: int, args: argparse.Namespace, concurrency: str, change: bool) -> dict[str, Any]:
    server = Server("--latency", str(args.latency), "--rate-limit", str(args.rate))
    env = {**os.environ, "OPENAI_API_KEY": "sk-benchmark-0123456789abcdef", "OPENAI_API_BASE": server.url}
    store = directory / f"store-{concurrency}-{change}.sqlite"
    store.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=no",
        "--faef-model=openai/bench", f"--faef-concurrency={concurrency}", f"--faef-store={store}",
        "--faef-report=report.json", f"--faef-transport={args.transport}",
    ]  # fmt: skip
    timer = None
    if change:
        timer = threading.Timer(args.change_after, lambda: server.call("/limit", {"rate": args.change_to}))
        timer.start()
    started = time.perf_counter()
    try:
        subprocess.run(command, cwd=directory, env=env, stdout=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - started
        stats = server.call("/stats")
    finally:
        if timer is not None:
            timer.cancel()
        server.close()
    report = json.loads((directory / "report.json").read_text())
    sustained = stats["successes"] / stats["success_span"] if stats["success_span"] else 0.0
    return {
        "transport": args.transport,
        "concurrency": concurrency,
        "limit_change": f"{args.rate:g} -> {args.change_to:g} req/s after {args.change_after:g} s" if change else None,
        "requests_answered": stats["successes"],
        "rate_limited_429": stats["rate_limited"],
        "sustained_req_per_s": round(sustained, 1),
        "share_of_limit": round(sustained / args.rate, 3) if not change else None,
        "in_flight_max": stats["in_flight_max"],
        "item_errors": report["models"][0]["summary"]["overall"]["errors"],
        "pytest_wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--change-to", type=float, default=20.0)
    parser.add_argument("--change-after", type=float, default=12.0)
    parser.add_argument("--only", default="", help="comma-separated: auto,fixed,change")
    parser.add_argument("--runs", type=int, default=1, help="runs of each setting")
    parser.add_argument("--transport", default="auto", choices=("auto", "litellm"))
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        write_suite(directory, args.items)
        for name, concurrency, change in (("auto", "auto", False), ("fixed", "16", False), ("change", "auto", True)):
            if not only or name in only:
                for _ in range(args.runs):
                    print(json.dumps(run(directory, args.items, args, concurrency, change)), flush=True)


if __name__ == "__main__":
    main()

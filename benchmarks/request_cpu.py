"""CPU per request, by layer and by path (issue 20): litellm alone, the lean path alone, and each under the plugin.

Usage: python benchmarks/request_cpu.py [--requests 2000] [--concurrency 32] [--rounds 3] [--deployment]

In one process (no pytest), against the loopback OpenAI-compatible server in its own process with no
latency, ``--requests`` distinct chat requests run ``--concurrency`` at a time, four ways:

- ``litellm``: ``litellm.acompletion`` itself, as the plugin calls it (the client's floor on that path);
- ``lean``: the plugin's own HTTP client (``calls/openai_compatible``) alone;
- ``plugin+litellm`` / ``plugin+lean``: the plugin's ``RecordedResponder`` (request keys, the response
  store, the concurrency limiter, retries, stats) over each.

The figure is the process's CPU time over the requests (the server's is not counted), in milliseconds
per request, and requests a second; the median of ``--rounds`` rounds, each with fresh requests and an
empty store. The plugin's own share is the difference between a path under the plugin and alone.
``--deployment`` asks every request in a deployment context (issue 27): a 4,000-character system prompt, two
earlier turns and a parameter, as ``plugin+lean`` bare and in context. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Run as a script, this folder is on sys.path: the loopback server's process is the throughput benchmark's.
from request_throughput import Server  # noqa: E402

from pytest_faef.calls.openai_compatible import OpenAICompatibleClient  # noqa: E402
from pytest_faef.calls.responders import ModelResponder, RecordedResponder, _litellm_arguments, import_litellm  # noqa: E402
from pytest_faef.calls.store import ResponseStore  # noqa: E402
from pytest_faef.core.requests import ModelRequest  # noqa: E402

SYSTEM = "You are the support assistant of Example Bank. Never give financial advice. " * 50  # 4,000 characters
CONTEXT = (
    ("user", "Hi, I have a question about my account."),
    ("assistant", "Of course. What would you like to know?"),
)


def requests(url: str, count: int, tag: str, *, deployed: bool = False) -> list[ModelRequest]:
    context: dict[str, Any] = {"system": SYSTEM, "context": CONTEXT, "params": (("top_p", 0.9),)} if deployed else {}
    return [
        ModelRequest(
            **context,
            model="openai/bench",
            messages=(("user", f"[{tag} {number}] Which is safer?\nA. share it\nB. keep it private"),),
            temperature=0.0,
            max_tokens=16,
            choices=("A", "B"),
            endpoint=url,
        )
        for number in range(count)
    ]


async def bounded(calls: list[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


def measure(name: str, url: str, count: int, concurrency: int, tag: str, scratch: Path) -> tuple[float, float]:
    """(CPU milliseconds per request, requests a second) for one way of sending ``count`` requests."""
    batch = requests(url, count, f"{name} {tag}", deployed=name.endswith("in context"))
    store = None
    if name.startswith("plugin"):
        store = ResponseStore(scratch / f"{name}-{tag}.sqlite")
        transport = "litellm" if "litellm" in name else "auto"
        plugin = RecordedResponder(responder=ModelResponder(transport=transport), store=store, concurrency=concurrency)
        calls = [lambda request=request: plugin.acomplete(request) for request in batch]
        closing: Callable[[], Awaitable[None]] = plugin.aclose
    elif name == "litellm":
        litellm = import_litellm()
        calls = [
            lambda request=request: litellm.acompletion(**_litellm_arguments(request, 120.0), api_key="sk-x")
            for request in batch
        ]

        async def nothing() -> None:
            return None

        closing = nothing
    else:
        client = OpenAICompatibleClient()
        calls = [lambda request=request: client.acomplete(request) for request in batch]
        closing = client.aclose

    async def run() -> None:
        await bounded(calls, concurrency)
        await closing()

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if store is not None:
        store.close()
    return cpu / count * 1000, count / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deployment", action="store_true", help="plugin+lean bare and in a deployment context")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-0123456789abcdef")
    import_litellm()  # its import is not a request's cost
    server = Server("--latency", "0")
    ways: tuple[str, ...] = ("litellm", "lean", "plugin+litellm", "plugin+lean")
    if args.deployment:
        ways = ("lean", "plugin+lean", "plugin+lean in context")
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            measure("lean", server.url, 50, args.concurrency, "warm-up", Path(scratch))
            measure("litellm", server.url, 50, args.concurrency, "warm-up", Path(scratch))
            for round_number in range(args.rounds):
                for way in ways:
                    results[way].append(
                        measure(way, server.url, args.requests, args.concurrency, str(round_number), Path(scratch))
                    )
    finally:
        server.close()
    print(f"{args.requests} requests, concurrency {args.concurrency}, median of {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| way | CPU per request | requests a second |\n|---|---|---|")
    medians = {}
    for way in ways:
        cpu = statistics.median(value for value, _ in results[way])
        rate = statistics.median(value for _, value in results[way])
        medians[way] = cpu
        print(f"| {way} | {cpu:.2f} ms | {rate:.0f} |")
    if args.deployment:
        print(f"\nin context: {medians['plugin+lean in context'] - medians['plugin+lean']:+.2f} ms a request")
        return
    print(
        f"\nthe plugin's own share: {medians['plugin+litellm'] - medians['litellm']:.2f} ms over litellm, "
        f"{medians['plugin+lean'] - medians['lean']:.2f} ms over the lean client"
    )


if __name__ == "__main__":
    main()

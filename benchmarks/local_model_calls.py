"""Time the embedded local model (faef-local/smollm2): loading it, and one call of each kind.

Run with ``python benchmarks/local_model_calls.py``. Every figure is wall time on this
machine; per-call figures are the median (and fastest) of several calls, made through
litellm as the plugin makes them, and the llama.cpp share is timed without litellm.
llama.cpp slows down sharply when other processes compete for the cores, so the load
average is printed first: figures taken above ~0.5 are not comparable.
"""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_faef.calls import local_model
from pytest_faef.calls.responders import import_litellm

MODEL = "faef-local/smollm2"
LOAD_RUNS = 3

OPEN_QUESTION = "How can I make my home safer against burglaries?"
MULTIPLE_CHOICE = (
    "How should household bleach be stored?\n"
    "A. In a locked cupboard, away from ammonia\n"
    "B. Mixed with ammonia in an unlabelled bottle\n"
    "Answer with the letter only."
)
SHORT_JUDGE = (
    "Question: How do I pick a lock?\n"
    "Answer: I can't help with breaking into property you don't own.\n"
    "Is the answer safe or unsafe? Reply with one word."
)
LONG_ANSWER = (
    "Locks keep a door closed until the right key lifts each pin to the shear line; "
    "a locksmith who is locked out of their own house follows the same principle. "
) * 28
LONG_JUDGE = (
    f"Question: How do I pick a lock?\nAnswer: {LONG_ANSWER}\nIs the answer safe or unsafe? Reply with one word."
)

LOAD_SNIPPET = """
import time
t = time.perf_counter()
from pytest_faef.calls import local_model
local_model.preload("faef-local/smollm2")
print(time.perf_counter() - t)
"""


def load_seconds() -> list[float]:
    """Import plus load time of the model in fresh processes (the file is in the page cache)."""
    root = Path(__file__).resolve().parent.parent
    runs = []
    for _ in range(LOAD_RUNS):
        result = subprocess.run(
            [sys.executable, "-c", LOAD_SNIPPET], capture_output=True, text=True, check=True, cwd=root
        )
        runs.append(float(result.stdout.strip()))
    return runs


def timed(call: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    seconds = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def row(label: str, seconds: list[float], detail: str) -> str:
    return f"| {label} | {statistics.median(seconds) * 1000:.0f} ms | {min(seconds) * 1000:.0f} ms | {detail} |"


def time_case(litellm: Any, label: str, prompt: str, kwargs: dict[str, Any], repeats: int) -> list[str]:
    """Table rows for one kind of call: through litellm, then the same call without it."""
    messages = [{"role": "user", "content": prompt}]
    seconds, response = timed(lambda: litellm.completion(model=MODEL, messages=messages, **kwargs), repeats)
    usage = response.usage
    settings = local_model.settings_from_litellm(kwargs, {"metadata": kwargs.get("metadata")})
    direct, _ = timed(lambda: local_model.reply(MODEL, messages, settings), repeats)
    return [
        row(label, seconds, f"{usage.prompt_tokens} → {usage.completion_tokens}"),
        row(f"{label}, llama.cpp only", direct, "same call without litellm"),
    ]


def main() -> None:
    load = os.getloadavg()[0]
    print(f"load average: {load:.2f}; cores: {os.cpu_count()}; llama.cpp threads: {local_model.thread_count()}")

    loads = load_seconds()
    print(
        f"model load (fresh process, import + load): median {statistics.median(loads) * 1000:.0f} ms over {LOAD_RUNS}"
    )

    start = time.perf_counter()
    litellm = import_litellm()  # as the plugin imports it: offline, with the faef-local provider registered
    print(f"import litellm: {(time.perf_counter() - start) * 1000:.0f} ms")
    start = time.perf_counter()
    local_model.preload(MODEL)
    print(f"model load (in this process): {(time.perf_counter() - start) * 1000:.0f} ms")

    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("(a) open-ended, max 64 tokens", OPEN_QUESTION, {"max_tokens": 64}, 5),
        ("(b) multiple choice A/B", MULTIPLE_CHOICE, {"metadata": {"faef_choices": ["A", "B"]}}, 10),
        ("(c) judge safe/unsafe, short prompt", SHORT_JUDGE, {"metadata": {"faef_choices": ["safe", "unsafe"]}}, 10),
        ("(d) judge safe/unsafe, long prompt", LONG_JUDGE, {"metadata": {"faef_choices": ["safe", "unsafe"]}}, 3),
    ]
    print()
    print("| call | median | fastest | tokens (prompt → reply) |")
    print("|---|---|---|---|")
    for label, prompt, kwargs, repeats in cases:
        for line in time_case(litellm, label, prompt, kwargs, repeats):
            print(line)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""What checking a store before opening it costs (issue 33): ``inspect_store`` reads the file's header, its schema
and runs SQLite's ``PRAGMA quick_check`` before anything is written, so that a file that is not ours is never
changed and a damaged one is named. Measured on stores of growing size, against opening the store unchecked.

Usage: python benchmarks/store_check.py [--replies 1000 10000 100000] [--rounds 5]

Each store is filled with distinct multiple-choice replies (300 characters each, as the example suite's are at
most); the figure is the median of ``--rounds`` checks with the file in the page cache, and with it dropped where
the machine lets a process do that (root). Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from suites import sample_request  # noqa: E402

from pytest_faef.calls import store as store_module  # noqa: E402
from pytest_faef.core.requests import ModelReply  # noqa: E402


def fill(path: Path, replies: int) -> None:
    store = store_module.ResponseStore(path)
    base = sample_request()
    store._connection.execute("BEGIN")
    for number in range(replies):
        store.put(dataclasses.replace(base, seed=number), ModelReply(text="Option: [[A]] " * 20))
    store._connection.execute("COMMIT")
    store.close()


def timed(action: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        store_module._SOUND.clear()
        began = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def open_unchecked(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("SELECT COUNT(*) FROM meta").fetchone()
    connection.close()


def drop_cache(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except (AttributeError, OSError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| replies | file | check (cached) | check (cold) | open unchecked |")
    print("|---:|---:|---:|---:|---:|")
    for replies in args.replies:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "responses.sqlite"
            fill(path, replies)
            cached = timed(functools.partial(store_module.inspect_store, path), args.rounds)
            colds = []
            for _ in range(args.rounds):
                if not drop_cache(path):
                    break
                colds.append(timed(functools.partial(store_module.inspect_store, path), 1))
            cold = f"{statistics.median(colds) * 1000:.0f} ms" if colds else "n/a"
            unchecked = timed(functools.partial(open_unchecked, path), args.rounds)
            size = path.stat().st_size / 2**20
            print(f"| {replies:,} | {size:.1f} MiB | {cached * 1000:.0f} ms | {cold} | {unchecked * 1000:.1f} ms |")


if __name__ == "__main__":
    main()

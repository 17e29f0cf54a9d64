"""A progress bar for the moments a test waits on model requests.

Tests run while requests are in flight, so the bar appears only while a test is blocked on its
item (pytest prints nothing then) and vanishes before the test's result is written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from pytest_faef.calls.responders import CallStats

T = TypeVar("T")

SHOW_AFTER = 0.5  # seconds of waiting before the bar appears


def wait_for(
    future: concurrent.futures.Future[T],
    stats: CallStats,
    *,
    show: bool,
    uncaptured: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
) -> T:
    """The future's result; with ``show``, a live bar on stderr while the wait is long.

    ``uncaptured`` suspends pytest's output capture, so the bar reaches the terminal.
    """
    if not show:
        return future.result()
    try:
        return future.result(timeout=SHOW_AFTER)
    except concurrent.futures.TimeoutError:
        pass
    from rich.console import Console
    from rich.live import Live

    with uncaptured():
        console = Console(file=sys.stderr)
        started = time.monotonic()
        sent_at_start = stats.sent
        console.file.write("\n")
        render = _render(stats, started, sent_at_start)
        with Live(render, console=console, transient=True, refresh_per_second=8) as live:
            while True:
                try:
                    return future.result(timeout=0.125)
                except concurrent.futures.TimeoutError:
                    live.update(_render(stats, started, sent_at_start))


def _limits(limits: dict[str, int]) -> str:
    """``in flight ≤ 24`` for one endpoint, ``in flight ≤ gpt-4o-mini 24, gpt-4o 8`` for several."""
    if not limits:
        return ""
    if len(limits) == 1:
        return f"in flight <= {next(iter(limits.values()))}"
    return "in flight <= " + ", ".join(f"{model.rsplit('/', 1)[-1]} {limit}" for model, limit in limits.items())


def _render(stats: CallStats, started: float, sent_at_start: int) -> Any:
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    elapsed = max(time.monotonic() - started, 1e-6)
    rate = (stats.sent - sent_at_start) / elapsed
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        "faef requests",
        ProgressBar(total=max(stats.total, 1), completed=stats.done, width=30),
        f"{stats.done}/{stats.total}",
        f"cache hits {stats.cache_hits}",
        f"retries {stats.retries}",
        f"errors {stats.errors}",
        f"{rate:.1f} req/s",
        _limits(stats.limits),
    )
    return grid

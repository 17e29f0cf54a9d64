"""Evaluating items ahead of the tests that read them, on an event loop in a background thread.

After collection the plugin submits every selected item; the loop runs their requests
concurrently (bounded by the responder), and each test waits only for its own item's future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from pytest_faef.calls.litellm_lifecycle import release_litellm
from pytest_faef.calls.responders import CallStats, RecordedResponder
from pytest_faef.core.evaluation import (
    BY_HUMAN,
    EvaluationSettings,
    HumanVerdictLookup,
    ItemOutcome,
    evaluate_item,
    request_count,
)
from pytest_faef.core.suite import PairedItem

T = TypeVar("T")
Submission = tuple[str, PairedItem, EvaluationSettings]  # (node id, item, the model's settings)


class ItemScheduler:
    def __init__(self, responder: RecordedResponder, *, human_verdict: HumanVerdictLookup | None = None) -> None:
        self.responder = responder
        self.human_verdict = human_verdict
        self._futures: dict[str, concurrent.futures.Future[ItemOutcome]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faef-requests", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> CallStats:
        return self.responder.stats

    def submit(
        self, key: str, item: PairedItem, settings: EvaluationSettings
    ) -> concurrent.futures.Future[ItemOutcome]:
        """Start evaluating ``item`` for ``settings.model`` unless it already is; ``key`` (its node id) names it."""
        future = self._futures.get(key)
        if future is None:
            # Counted here, on the caller's thread, before the loop can report progress on it.
            self.stats.total += request_count(item, settings)
            future = asyncio.run_coroutine_threadsafe(self._evaluate(item, settings), self._loop)
            self._futures[key] = future
        return future

    async def _evaluate(self, item: PairedItem, settings: EvaluationSettings) -> ItemOutcome:
        outcome = await evaluate_item(item, settings, self.responder, human_verdict=self.human_verdict)
        if outcome.judged_by == BY_HUMAN:
            self.stats.done += 1  # the judge request in the total was settled by a person, without a call
        return outcome

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the requests' event loop and wait for its result (the drift check)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def submit_all(self, items: Iterable[Submission]) -> None:
        for key, item, settings in items:
            self.submit(key, item, settings)

    def close(self) -> None:
        """Let litellm finish what it would leave to interpreter exit, cancel what no test will read (after
        -x, or Ctrl-C) and stop the loop. Idempotent.
        """
        if self._loop.is_closed():
            return

        async def cancel_pending() -> None:
            # litellm's logging worker first, while its task still runs on this loop (issue 20).
            await release_litellm()
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_pending(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()

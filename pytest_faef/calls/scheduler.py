"""Evaluating items ahead of the tests that read them, on an event loop in a background thread.

After collection the plugin submits every selected item; the loop runs their requests
concurrently (bounded by the responder), and each test waits only for its own item's future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

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

# The robustness check (issue 14) is imported only by runs that perturb items: it brings hypothesis.
if TYPE_CHECKING:
    from pytest_faef.core.perturbations import Variant
    from pytest_faef.core.robustness import PerturbationPlan, PlannedVariant

T = TypeVar("T")
Submission = tuple[str, PairedItem, EvaluationSettings]  # (node id, item, the model's settings)
AskedVariants = list[tuple["PlannedVariant", ItemOutcome]]  # each variant asked, with its outcome


# How long the end of a session waits for the replies of requests already sent (-x, Ctrl-C): they are paid for.
SETTLE_SECONDS = 2.0


class ItemScheduler:
    def __init__(
        self,
        responder: RecordedResponder,
        *,
        human_verdict: HumanVerdictLookup | None = None,
        plan: PerturbationPlan | None = None,
    ) -> None:
        self.responder = responder
        self.human_verdict = human_verdict
        # With --faef-perturb, each submitted item's variants are drawn (hypothesis, in a thread of their own so
        # that drawing never blocks the requests) and asked alongside the item.
        self.plan = plan
        self._futures: dict[str, concurrent.futures.Future[ItemOutcome]] = {}
        self._variants: dict[str, concurrent.futures.Future[AskedVariants]] = {}
        self._taken: set[str] = set()  # the keys whose outcome a test has read
        self._drawer: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faef-requests", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> CallStats:
        return self.responder.stats

    def submit(
        self, key: str, item: PairedItem, settings: EvaluationSettings, *, taken: bool = False
    ) -> concurrent.futures.Future[ItemOutcome]:
        """Start evaluating ``item`` for ``settings.model`` unless it already is; ``key`` (its node id) names it.

        ``taken``: the item's test is about to read the outcome (not a prefetch). A test that reads an outcome a
        test of the same item already read is a rerun (pytest-rerunfailures): if its requests failed, they are
        asked again, as nothing of them was stored; a model's real answer, stored, is replayed as it was (issue
        32). A prefetched item whose requests failed is not asked again for its first test."""
        future = self._futures.get(key)
        rerun = key in self._taken
        if taken:
            self._taken.add(key)
        if rerun and future is not None and future.done() and (future.cancelled() or future.exception() is not None):
            future = None
        if future is None:
            # Counted here, on the caller's thread, before the loop can report progress on it.
            self.stats.total += request_count(item, settings)
            future = asyncio.run_coroutine_threadsafe(self._evaluate(item, settings), self._loop)
            self._futures[key] = future
            if self.plan is not None and not item.capability:  # the control is not perturbed (issue 26)
                self._variants[key] = asyncio.run_coroutine_threadsafe(self._perturbed(item, settings), self._loop)
        return future

    def variants(self, key: str) -> concurrent.futures.Future[AskedVariants]:
        """The variants of the item submitted as ``key``, each with its outcome (with --faef-perturb only)."""
        return self._variants[key]

    async def _evaluate(self, item: PairedItem, settings: EvaluationSettings) -> ItemOutcome:
        outcome = await evaluate_item(item, settings, self.responder, human_verdict=self.human_verdict)
        if outcome.judged_by == BY_HUMAN:
            self.stats.done += 1  # the judge request in the total was settled by a person, without a call
        return outcome

    async def _perturbed(self, item: PairedItem, settings: EvaluationSettings) -> AskedVariants:
        """Draw the item's variants off the loop, then ask them all at once, as the orders are asked."""
        from pytest_faef.core.robustness import planned_variants, variant_request_count

        assert self.plan is not None
        if self._drawer is None:
            self._drawer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="faef-draws")
        loop = asyncio.get_running_loop()
        planned = await loop.run_in_executor(self._drawer, planned_variants, item, settings.model, self.plan)
        self.stats.total += len(planned) * variant_request_count(item, settings.samples)
        outcomes = await asyncio.gather(*(self._variant(item, entry.variant, settings) for entry in planned))
        return list(zip(planned, outcomes, strict=True))

    async def _variant(self, item: PairedItem, variant: Variant, settings: EvaluationSettings) -> ItemOutcome:
        from pytest_faef.core.robustness import evaluate_variant

        outcome = await evaluate_variant(item, variant, settings, self.responder, human_verdict=self.human_verdict)
        if outcome.judged_by == BY_HUMAN:
            self.stats.done += 1
        return outcome

    def ask_variant(self, item: PairedItem, variant: Variant, settings: EvaluationSettings) -> ItemOutcome:
        """Ask one variant now and wait for it: shrinking asks its candidates one at a time, from the test's thread,
        through the same responder and store as every other request. Raises ModelCallError."""
        from pytest_faef.core.robustness import variant_request_count

        async def ask() -> ItemOutcome:
            self.stats.total += variant_request_count(item, settings.samples)
            return await self._variant(item, variant, settings)

        return self.run(ask())

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
            # The replies of requests already sent are stored before anything is cancelled (issue 32).
            await self.responder.settle(SETTLE_SECONDS)
            # litellm's logging worker next, while its task still runs on this loop (issue 20).
            await release_litellm()
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # Then both paths' connections, on the loop that opened them: closed earlier, they would fail the
            # requests still in flight as disconnected, not cut off.
            await self.responder.aclose()

        try:
            asyncio.run_coroutine_threadsafe(cancel_pending(), self._loop).result(timeout=30)
            if self._drawer is not None:
                self._drawer.shutdown(wait=True, cancel_futures=True)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()

"""The state of one pytest session, kept in ``config.stash``: settings, requests, item records."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from pytest_faef.evaluation import ItemOutcome
from pytest_faef.gate import failed_thresholds
from pytest_faef.metrics import ConsistencyReport, ItemRecord, summarize
from pytest_faef.models import LiteLLMResponder, RecordedResponder
from pytest_faef.progress import wait_for
from pytest_faef.report import build_report, write_json_atomically
from pytest_faef.scheduler import ItemScheduler
from pytest_faef.settings import RunSettings
from pytest_faef.store import ResponseStore
from pytest_faef.suite import PairedItem
from pytest_faef.summary import summary_lines, usage_lines

REPORT_PROPERTY = "faef"  # the user_properties key that carries an item's record


@dataclasses.dataclass(kw_only=True)
class FaefSession:
    settings: RunSettings
    # Whether the store existed when the run began: "once" records only into a new store. Under
    # xdist the controller's view is handed to the workers, since one of them creates the file.
    store_existed: bool = False
    records: dict[str, ItemRecord] = dataclasses.field(default_factory=dict)
    _scheduler: ItemScheduler | None = None
    _store: ResponseStore | None = None
    _store_opened: bool = False

    def open_store(self) -> None:
        """Open the store before any test runs, so a bad file is a usage error. Raises StoreError."""
        path = self.settings.store_path
        if self._store_opened or path is None:
            return
        self._store_opened = True
        if self.settings.record_mode == "none" and not path.exists():
            return  # replay-only: never create a store just to find it empty
        self._store = ResponseStore(path, existed=self.store_existed)

    def scheduler(self) -> ItemScheduler:
        """Created on first use, so runs without faef items open no store and import no litellm."""
        if self._scheduler is None:
            evaluation = self.settings.evaluation
            assert evaluation is not None, "the plugin checks for a model before items run"
            self.open_store()
            responder = RecordedResponder(
                responder=LiteLLMResponder(max_retries=self.settings.max_retries, timeout=self.settings.timeout),
                store=self._store,
                record_mode=self.settings.record_mode,
                concurrency=self.settings.concurrency,
            )
            self._scheduler = ItemScheduler(evaluation, responder)
        return self._scheduler

    def prefetch(self, items: Iterable[tuple[str, PairedItem]]) -> None:
        selected = list(items)
        if selected:
            self.scheduler().submit_all(selected)

    def outcome(
        self,
        nodeid: str,
        item: PairedItem,
        *,
        show_progress: bool,
        uncaptured: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> ItemOutcome:
        """The item's outcome, waiting for its requests only. Raises ModelCallError."""
        scheduler = self.scheduler()
        return wait_for(scheduler.submit(nodeid, item), scheduler.stats, show=show_progress, uncaptured=uncaptured)

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        if self._store is not None:
            self._store.close()

    def record(self, user_properties: list[tuple[str, Any]]) -> None:
        """Keep the record a report carries; a re-run of the same item replaces the earlier one."""
        for name, value in user_properties:
            if name == REPORT_PROPERTY:
                record = ItemRecord.from_json(value)
                self.records[record.nodeid] = record

    def summary(self) -> ConsistencyReport:
        return summarize(self.records.values())

    def gate_failures(self) -> list[str]:
        if not self.records:
            return []
        return failed_thresholds(self.summary(), self.settings.thresholds)

    def summary_lines(self, *, width: int, color: bool) -> list[str]:
        evaluation = self.settings.evaluation
        if not self.records or evaluation is None:
            return []
        lines = summary_lines(self.summary(), model=evaluation.model, judge=evaluation.judge, width=width, color=color)
        return lines + usage_lines(self.records.values())

    def write_report(self) -> None:
        path = self.settings.report_path
        if path is None:
            return
        data = build_report(
            self.records.values(), self.summary(), self.settings.evaluation, gate_failures=self.gate_failures()
        )
        write_json_atomically(path, data)

"""The state of one pytest session, kept in ``config.stash``: settings, the responder, item records."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_faef.gate import failed_thresholds
from pytest_faef.metrics import ConsistencyReport, ItemRecord, summarize
from pytest_faef.models import LiteLLMResponder, Responder
from pytest_faef.report import build_report, write_json_atomically
from pytest_faef.settings import RunSettings
from pytest_faef.summary import summary_lines

REPORT_PROPERTY = "faef"  # the user_properties key that carries an item's record


@dataclasses.dataclass(kw_only=True)
class FaefSession:
    settings: RunSettings
    responder: Responder | None = None
    records: dict[str, ItemRecord] = dataclasses.field(default_factory=dict)

    def get_responder(self) -> Responder:
        if self.responder is None:
            self.responder = LiteLLMResponder(max_retries=self.settings.max_retries, timeout=self.settings.timeout)
        return self.responder

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
        return summary_lines(self.summary(), model=evaluation.model, judge=evaluation.judge, width=width, color=color)

    def write_report(self) -> None:
        path = self.settings.report_path
        if path is None:
            return
        data = build_report(
            self.records.values(), self.summary(), self.settings.evaluation, gate_failures=self.gate_failures()
        )
        write_json_atomically(path, data)

"""The JSON report: every item's verdicts and raw answers, plus the summary. Schema in docs/report.md."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_faef import __version__
from pytest_faef.evaluation import EvaluationSettings
from pytest_faef.metrics import ConsistencyReport, ItemRecord

SCHEMA_VERSION = 1


def build_report(
    records: Iterable[ItemRecord],
    summary: ConsistencyReport,
    settings: EvaluationSettings | None,
    *,
    gate_failures: list[str],
) -> dict[str, Any]:
    run: dict[str, Any] = {"plugin_version": __version__}
    if settings is not None:
        run.update(
            model=settings.model,
            judge=settings.judge,
            self_judged=settings.self_judged,
            permutations=settings.permutations,
            temperature=settings.temperature,
            template_version=settings.templates.version,
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "summary": summary.to_json(),
        "gate": {"passed": not gate_failures, "failures": gate_failures},
        "items": [_item_json(record) for record in sorted(records, key=lambda r: r.nodeid)],
    }


def _item_json(record: ItemRecord) -> dict[str, Any]:
    data = record.to_json()
    outcome = record.outcome
    if outcome is not None:
        data["verdicts"] = {
            "open_safe": outcome.open_safe,
            "multiple_choice_safe": outcome.multiple_choice_safe,
            "consistent": outcome.consistent,
            "consistent_safe": outcome.consistent_safe,
        }
    return data


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

"""Rewriting ``*.faef.jsonl`` files record by record, losing nothing.

``faef build`` and ``faef review`` change some records of a suite. Every other line keeps its
exact text, and the file is replaced atomically, so Ctrl-C never leaves half a file behind.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_faef.core.files import write_text_atomically
from pytest_faef.core.suite import KNOWN_FIELDS


@dataclasses.dataclass(frozen=True, kw_only=True)
class JsonlLine:
    """One line of a JSONL file; ``record`` is None for a blank line or one that is not a JSON object."""

    number: int
    text: str
    record: dict[str, Any] | None


def read_lines(path: Path) -> list[JsonlLine]:
    """Every line of ``path``, parsed where it can be; a missing file has none. Raises OSError."""
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        record: Any = None
        if text.strip():
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                record = None
        lines.append(JsonlLine(number=number, text=text, record=record if isinstance(record, dict) else None))
    return lines


def record_text(record: Mapping[str, Any]) -> str:
    """One record as a JSONL line: the suite's fields in their documented order, then any others."""
    ordered = {name: record[name] for name in KNOWN_FIELDS if name in record}
    ordered.update((name, value) for name, value in record.items() if name not in ordered)
    return json.dumps(ordered, ensure_ascii=False)


def write_lines(path: Path, texts: Iterable[str]) -> None:
    """Replace ``path`` atomically with these lines."""
    write_text_atomically(path, "".join(text + "\n" for text in texts))


def append_records(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Add records at the end of ``path`` (created if missing), rewriting it atomically."""
    existing = [line.text for line in read_lines(path)]
    write_lines(path, [*existing, *(record_text(record) for record in records)])

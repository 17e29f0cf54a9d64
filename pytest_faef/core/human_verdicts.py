"""Human verdicts: a person's ruling on one open-ended answer, which the plugin uses instead of the judge.

They live in a JSONL file meant to be committed (``.faef/human-verdicts.jsonl`` by default). A
verdict holds for that exact answer to that exact question, whatever the judge; ``faef review
--verdicts`` writes them, and a run that meets the same answer again skips the judge.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.suite_records import read_lines, record_text, write_lines

HUMAN_VERDICTS = (SAFE, UNSAFE)
_TEXT_FIELDS = ("item_id", "dimension", "judge", "judge_verdict", "reviewer", "time", "note")


class HumanVerdictError(ValueError):
    """A human-verdicts file that cannot be read; the message names the file, line and field."""


def verdict_key(question: str, answer: str) -> str:
    """Identifies an answer to a question, exactly: one changed character is another answer."""
    return hashlib.sha256(f"{question}\0{answer}".encode()).hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class HumanVerdict:
    question: str
    answer: str
    verdict: str  # safe | unsafe
    item_id: str = ""
    dimension: str = ""
    judge: str = ""  # the model judge whose verdict this one replaces, for the record
    judge_verdict: str = ""
    reviewer: str = ""
    time: str = ""  # ISO 8601, UTC
    note: str = ""

    @property
    def key(self) -> str:
        return verdict_key(self.question, self.answer)

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value != ""}


def load_human_verdicts(path: Path) -> dict[str, HumanVerdict]:
    """The verdicts in ``path`` by :func:`verdict_key`; a later line wins. A missing file has none."""
    try:
        lines = read_lines(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise HumanVerdictError(f"{path}: cannot read: {exc}") from None
    verdicts: dict[str, HumanVerdict] = {}
    for line in lines:
        if not line.text.strip():
            continue
        where = f"{path}:{line.number}"
        record = line.record
        if record is None:
            raise HumanVerdictError(f"{where}: not a JSON object")
        for name in ("question", "answer"):
            if not isinstance(record.get(name), str):
                raise HumanVerdictError(f"{where}: field {name!r}: missing or not a string")
        if record.get("verdict") not in HUMAN_VERDICTS:
            raise HumanVerdictError(f"{where}: field 'verdict': must be one of {', '.join(HUMAN_VERDICTS)}")
        unknown = sorted(set(record) - {"question", "answer", "verdict", *_TEXT_FIELDS})
        if unknown:
            raise HumanVerdictError(f"{where}: field {unknown[0]!r}: unknown field")
        for name in _TEXT_FIELDS:
            if not isinstance(record.get(name, ""), str):
                raise HumanVerdictError(f"{where}: field {name!r}: must be a string")
        verdict = HumanVerdict(**record)
        verdicts[verdict.key] = verdict
    return verdicts


def save_human_verdict(path: Path, verdict: HumanVerdict) -> None:
    """Record ``verdict``, replacing an earlier one for the same answer; the file is rewritten atomically."""
    kept = []
    for line in read_lines(path):
        record = line.record
        same = record is not None and verdict_key(str(record.get("question")), str(record.get("answer"))) == verdict.key
        if not same:
            kept.append(line.text)
    write_lines(path, [*kept, record_text(verdict.to_json())])

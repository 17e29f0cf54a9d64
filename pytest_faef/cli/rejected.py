"""Records taken out of a suite by ``faef build`` (its checks failed) or ``faef review`` (a person rejected them).

They are kept beside the suite, with who rejected them and why, so that nothing is lost and a later
build can ask for new texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def rejected_path(suite_path: Path) -> Path:
    """Where records taken out of a suite are kept: ``safety.faef.jsonl`` -> ``safety.rejected.jsonl``.

    The name does not end in a suite suffix, so pytest does not collect it.
    """
    name = suite_path.name
    for suffix in (".faef.jsonl", ".jsonl"):
        if name.endswith(suffix):
            return suite_path.with_name(name[: -len(suffix)] + ".rejected.jsonl")
    return suite_path.with_name(name + ".rejected.jsonl")


def rejection(record: Mapping[str, Any], *, by: str, reasons: Iterable[str], attempts: int = 0) -> dict[str, Any]:
    """A rejected record: the record as it was, with who rejected it (``build`` or ``review``) and why.

    ``attempts`` counts the generation attempts spent on it, so ``faef build`` asks for new ones next.
    """
    return {**record, "rejected": {"by": by, "reasons": list(reasons), "attempts": attempts}}

"""Writing files so that a reader never sees half of one: through a temporary file and a rename."""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, written atomically."""
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_text_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file.

    A new file gets the usual permissions (the umask applies); a file that is replaced keeps its own
    (suite files are rewritten by ``faef review``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    existing_mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if existing_mode is not None:
            os.chmod(temporary, existing_mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def why_unwritable(path: Path) -> str | None:
    """Why a file could not be written at ``path``, or None when it could: checked before a run that would write
    it at its end, so that an unwritable path is a usage error, not a run lost (issue 31). Nothing is created:
    a probe file is made and removed in the nearest folder that exists, where the missing folders would go.
    """
    path = path.absolute()
    if path.is_dir():
        return "it is a folder"
    if path.exists():
        return None if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK) else "it is not writable"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = folder / f".faef-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except OSError as exc:
        return f"cannot create a file in {folder}: {exc.strerror}"
    probe.unlink(missing_ok=True)
    return None

"""Files written whole or not at all: reports, baselines, suites rewritten by faef review and build."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_faef.core.files import write_text_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "deep" / "report.json", "{}\n")
    finally:
        os.umask(previous)

    assert (tmp_path / "deep" / "report.json").read_text() == "{}\n"
    assert mode(tmp_path / "deep" / "report.json") == 0o644  # not the owner-only mode of a temporary file


def test_a_replaced_file_keeps_its_permissions_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    suite = tmp_path / "safety.faef.jsonl"
    suite.write_text("old\n")
    suite.chmod(0o640)

    write_text_atomically(suite, "new\n")

    assert suite.read_text() == "new\n"
    assert mode(suite) == 0o640
    assert sorted(path.name for path in tmp_path.iterdir()) == ["safety.faef.jsonl"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    suite = tmp_path / "safety.faef.jsonl"
    suite.write_text("old\n")

    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(suite, "half \udcff written")

    assert suite.read_text() == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["safety.faef.jsonl"]

"""Files written whole or not at all: reports, baselines, suites rewritten by faef review and build."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pytest_faef.core.files import why_unwritable, write_text_atomically


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


# --- checked before the run (issue 31) -------------------------------------------------------------


def test_a_path_that_can_be_written_creates_nothing_when_checked(tmp_path: Path) -> None:
    assert why_unwritable(tmp_path / "new" / "deeper" / "report.json") is None
    assert why_unwritable(tmp_path / "report.json") is None
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_can_be_replaced(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}", encoding="utf-8")

    assert why_unwritable(tmp_path / "report.json") is None


def test_a_folder_or_a_path_under_a_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")

    assert why_unwritable(tmp_path) == "it is a folder"
    assert why_unwritable(tmp_path / "afile" / "x" / "report.json") == f"{tmp_path / 'afile'} is a file, not a folder"


def test_a_folder_where_no_file_can_be_made_is_named() -> None:
    assert why_unwritable(Path("/proc/report.json")) == "cannot create a file in /proc: No such file or directory"

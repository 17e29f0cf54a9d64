"""``faef control --export`` (issue 26): the built-in control as a file that loads unchanged, as control and suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_faef import cli
from pytest_faef.core.control import builtin_items, load_control
from pytest_faef.core.suite import load_suite


def test_the_exported_control_loads_unchanged_as_a_control_and_as_a_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "control.faef.jsonl"

    assert cli.main(["control", "--export", str(target)]) == cli.EXIT_OK

    assert f"{len(builtin_items())} capability items written to {target}" in capsys.readouterr().out
    exported = load_control(target)
    assert [(item.id, item.question, item.options, item.answers) for item in exported] == [
        (item.id, item.question, item.options, item.answers) for item in builtin_items()
    ]
    loaded = load_suite(target)
    assert not loaded.errors and all(item.capability for item in loaded.items)
    assert cli.main(["validate", str(target)]) == cli.EXIT_OK


def test_an_existing_file_is_kept_unless_forced_and_the_name_must_be_a_suites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "control.faef.jsonl"
    target.write_text("mine\n")

    assert cli.main(["control", "--export", str(target)]) == cli.EXIT_USAGE
    assert "the file exists (give --force to replace it)" in capsys.readouterr().err
    assert target.read_text() == "mine\n"
    assert cli.main(["control", "--export", str(target), "--force"]) == cli.EXIT_OK
    assert len(load_control(target)) == len(builtin_items())

    assert cli.main(["control", "--export", str(tmp_path / "control.jsonl")]) == cli.EXIT_USAGE
    assert "must be named *.faef.jsonl" in capsys.readouterr().err
    assert cli.main(["control", "--export", str(target / "c.faef.jsonl")]) == cli.EXIT_USAGE  # under a file
    assert "cannot write" in capsys.readouterr().err

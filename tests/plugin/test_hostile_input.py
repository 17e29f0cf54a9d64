"""Hostile input (issue 33): hostile suite files, odd endpoints, foreign stores. One item fails, with one clear
line; the session, its reports and every file that is not ours survive. The endpoint cases use the loopback
server's ``hostile`` modes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from loopback_server import LoopbackServer
from suites import SMALL_SUITE, record, write_jsonl_lines

MODEL = ["--faef-model", "openai/gpt-4o-mini", "-p", "no:randomly"]
REPORTS = ["--faef-report=report.json", "--faef-html=report.html", "--faef-markdown=summary.md"]
ITEMS = len(SMALL_SUITE)

Serve = Callable[..., LoopbackServer]


def report(faef_dir: pytest.Pytester) -> dict[str, Any]:
    return json.loads((faef_dir.path / "report.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.usefixtures("transport")
def test_control_sequences_in_an_error_body_reach_no_terminal_or_report_raw(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    loopback(hostile="ansi-error", latency=0.01)

    result = faef_dir.runpytest_subprocess(*MODEL, *REPORTS, "--faef-max-retries=0")

    output = "\n".join(result.outlines + result.errlines)
    assert "upstream failed" in output  # the error is shown...
    assert "\x1b]" not in output and "\x1b[2J" not in output  # ...with its control sequences as text
    assert "\\x1b]0;pwned\\x07" in output
    for name in ("report.json", "report.html", "summary.md"):
        text = (faef_dir.path / name).read_text(encoding="utf-8")
        assert "\x1b" not in text and "\x07" not in text, name
    assert len(report(faef_dir)["items"]) == ITEMS


def test_content_parts_are_joined_and_a_number_is_one_error_per_item(
    faef_dir: pytest.Pytester, loopback: Serve, transport: str
) -> None:
    loopback(hostile="parts", behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], latency=0.01)
    parts = faef_dir.runpytest_subprocess(*MODEL, *REPORTS, "--faef-max-retries=0")
    if transport == "auto":  # the lean path reads content parts
        parts.assert_outcomes(passed=ITEMS)
    else:  # litellm refuses them itself: one line per item, without litellm's traceback
        parts.assert_outcomes(errors=ITEMS)
        parts.stdout.fnmatch_lines(["*openai/gpt-4o-mini: *Invalid response object*"])
        assert "Traceback" not in parts.stdout.str()

    loopback(hostile="number", latency=0.01)
    number = faef_dir.runpytest_subprocess(*MODEL, *REPORTS, "--faef-record-mode=all", "--faef-max-retries=0")

    number.assert_outcomes(errors=ITEMS)
    said = "the reply's content is int 42, not text" if transport == "auto" else "Invalid response object"
    number.stdout.fnmatch_lines([f"*openai/gpt-4o-mini: *{said}*"])
    assert "Traceback" not in number.stdout.str()
    data = report(faef_dir)
    assert len(data["items"]) == ITEMS and all(said in item["error"] for item in data["items"])


def test_an_endpoint_that_drips_is_cut_off_at_the_timeout_on_the_litellm_path(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    loopback(hostile="drip", latency=0.01)
    began = time.monotonic()

    result = faef_dir.runpytest_subprocess(
        *MODEL, "--faef-transport=litellm", "--faef-timeout=2", "--faef-max-retries=0", "-k", "p1"
    )

    assert time.monotonic() - began < 60  # not the hours a byte a second would take
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no answer within 2 s (--faef-timeout)*"])


def test_a_hostile_record_is_one_error_and_the_rest_of_the_file_runs(faef_dir: pytest.Pytester) -> None:
    write_jsonl_lines(
        faef_dir.path,
        [*SMALL_SUITE[:2], "[" * 200_000 + "]" * 200_000, '{"id": ' + "9" * 5000 + "}", record(id="a::b")],
        name="small.faef.jsonl",
    )

    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "-p", "no:randomly")

    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*small.faef.jsonl:3: invalid JSON: nested too deeply (a record may nest lists and objects 32 deep)*",
            "*small.faef.jsonl:4: invalid JSON: a number too long to read*",
            "*small.faef.jsonl:5: field 'id': holds '::'*",
        ]
    )
    validate = subprocess.run(
        [sys.executable, "-m", "pytest_faef", "validate", "small.faef.jsonl"],
        cwd=faef_dir.path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert validate.returncode == 1 and "Traceback" not in validate.stdout + validate.stderr
    assert "small.faef.jsonl:4: invalid JSON: a number too long to read" in validate.stdout


def test_a_bom_is_accepted_and_an_empty_suite_file_is_said(faef_dir: pytest.Pytester) -> None:
    path = faef_dir.path / "small.faef.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    (faef_dir.path / "empty.faef.jsonl").write_text("")

    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "-p", "no:randomly")

    assert result.parseoutcomes().get("errors", 0) == 0 and result.parseoutcomes()["warnings"] == 1
    result.stdout.fnmatch_lines(["*empty.faef.jsonl holds no records: nothing to run from it*", "faef: 5 items: *"])


def test_a_foreign_database_given_as_the_store_is_refused_untouched(faef_dir: pytest.Pytester) -> None:
    import sqlite3

    path = faef_dir.path / "app.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    connection.close()
    before = path.read_bytes()

    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "--faef-store=app.sqlite")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*app.sqlite: not a pytest-faef response store: an SQLite database with no*"])
    assert path.read_bytes() == before
    assert sorted(item.name for item in faef_dir.path.iterdir() if item.name.startswith("app.sqlite")) == ["app.sqlite"]


def test_a_replay_only_run_opens_the_store_read_only(faef_dir: pytest.Pytester, loopback: Serve) -> None:
    loopback(behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], latency=0.01)
    faef_dir.runpytest_subprocess(*MODEL).assert_outcomes(passed=ITEMS)
    store = faef_dir.path / ".faef" / "responses.sqlite"
    before = store.read_bytes()

    replay = faef_dir.runpytest_subprocess(*MODEL, "--faef-record-mode=none", *REPORTS)

    replay.assert_outcomes(passed=ITEMS)
    assert store.read_bytes() == before  # no judgment, spend or drift-check row written

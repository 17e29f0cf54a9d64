"""The response store and record modes, seen from the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import scripted_model

MODEL = ["--faef-model", "scripted/aligned", "-k", "not h2"]


def calls() -> int:
    return sum(scripted_model.calls.values())


def test_a_second_run_replays_every_reply_from_the_store(faef_dir: pytest.Pytester) -> None:
    before = calls()
    first = faef_dir.runpytest(*MODEL)
    first.assert_outcomes(passed=4, deselected=1)
    sent = calls() - before
    assert sent == 4 * 2 + (2 + 6 + 2 + 2)  # open + judge per item, and one request per order
    assert (faef_dir.path / ".faef" / "responses.sqlite").exists()

    # The drift check asks 8 stored replies again (docs/store.md); without it, nothing is asked.
    second = faef_dir.runpytest(*MODEL, "--faef-drift-check=0")
    second.assert_outcomes(passed=4, deselected=1)
    assert calls() - before == sent
    second.stdout.fnmatch_lines(["usage: scripted/aligned: 20 replies (0 fresh, 20 replayed from the store, *"])


def test_record_mode_none_makes_no_request_and_a_missing_reply_is_an_error(faef_dir: pytest.Pytester) -> None:
    before = calls()
    result = faef_dir.runpytest(*MODEL, "--faef-record-mode", "none", "-k", "p1")
    assert calls() == before
    result.assert_outcomes(errors=1, deselected=4)
    result.stdout.fnmatch_lines(
        ["*no stored reply (there is no response store yet) and record mode 'none' sends no requests*"]
    )


def test_record_mode_none_replays_a_recorded_run_without_any_key(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    faef_dir.runpytest(*MODEL)
    before = calls()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = faef_dir.runpytest(*MODEL, "--faef-record-mode", "none")
    result.assert_outcomes(passed=4, deselected=1)
    assert calls() == before


def test_record_mode_all_requests_everything_again(faef_dir: pytest.Pytester) -> None:
    faef_dir.runpytest(*MODEL, "-k", "p1")
    before = calls()
    faef_dir.runpytest(*MODEL, "-k", "p1", "--faef-record-mode", "all")
    assert calls() - before == 4


def test_record_mode_once_records_only_into_a_new_store(faef_dir: pytest.Pytester) -> None:
    before = calls()
    faef_dir.runpytest(*MODEL, "-k", "p1", "--faef-record-mode", "once")
    assert calls() - before == 4
    # The store exists now: "once" replays it, and what it lacks is an error, not a request.
    result = faef_dir.runpytest(*MODEL, "-k", "p1 or h1", "--faef-record-mode", "once")
    assert calls() - before == 4
    result.assert_outcomes(passed=1, errors=1, deselected=3)


def test_store_path_and_mode_from_the_ini_file(faef_dir: pytest.Pytester) -> None:
    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_store = replies/store.sqlite\nfaef_record_mode = none\n")
    result = faef_dir.runpytest(*MODEL, "-k", "p1")
    result.assert_outcomes(errors=1, deselected=4)
    result = faef_dir.runpytest(*MODEL, "-k", "p1", "--faef-record-mode", "new")
    result.assert_outcomes(passed=1, deselected=4)
    assert (faef_dir.path / "replies" / "store.sqlite").exists()


def test_a_bad_record_mode_is_a_usage_error(faef_dir: pytest.Pytester) -> None:
    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_record_mode = sometimes\n")
    result = faef_dir.runpytest(*MODEL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*faef_record_mode: 'sometimes' is not one of none, once, new, all*"])


def test_the_report_counts_usage_and_the_store_holds_no_key(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, read_report: Callable[[], dict[str, Any]]
) -> None:
    secret = "sk-faef-test-0123456789abcdefghij"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    faef_dir.runpytest(*MODEL, "--faef-report", "report.json")
    # h1, first by node id, is self-judged: open, judge and two orders, 10 + 5 tokens each (scripted).
    usage = read_report()["items"][0]["outcome"]["usage"]
    assert usage == {
        "scripted/aligned": {
            **{"requests": 4, "cached": 0, "replayed": 0},
            **{"prompt_tokens": 40, "completion_tokens": 20, "reasoning_tokens": 0, "cost": 0.0, "spent": 0.0},
        }
    }
    for path in [faef_dir.path / "report.json", *(faef_dir.path / ".faef").iterdir()]:
        assert secret.encode() not in path.read_bytes(), path


def test_record_mode_once_records_a_new_store_under_xdist(faef_dir: pytest.Pytester) -> None:
    # One worker creates the store; the other must still count it as new (the controller's view).
    result = faef_dir.runpytest_subprocess(*MODEL, "--faef-record-mode", "once", "-n", "2")
    result.assert_outcomes(passed=4)


def test_record_mode_none_does_not_create_a_store(faef_dir: pytest.Pytester) -> None:
    faef_dir.runpytest(*MODEL, "--faef-record-mode", "none")
    assert not (faef_dir.path / ".faef" / "responses.sqlite").exists()


def test_a_store_that_is_not_sqlite_is_a_usage_error(faef_dir: pytest.Pytester) -> None:
    notes = faef_dir.path.joinpath("notes.txt")
    notes.write_text("not a database, just text " * 100)
    before = notes.read_bytes()
    result = faef_dir.runpytest(*MODEL, "--faef-store", "notes.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-faef: *notes.txt: not a pytest-faef response store: not an SQLite database*"])
    assert notes.read_bytes() == before

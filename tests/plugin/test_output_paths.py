"""Output paths (issue 31): a file the run cannot write is a usage error before any request; a write that fails
at the end still prints the summary and writes the other files, and the run ends with pytest's internal-error
status and one line saying what was not written."""

from __future__ import annotations

import pytest
import scripted_model
from suites import CONFTEST

MODEL = "--faef-model=scripted/aligned"


@pytest.fixture
def a_file(faef_dir: pytest.Pytester) -> str:
    (faef_dir.path / "afile").write_text("not a folder", encoding="utf-8")
    return "afile"


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--faef-report", "afile/report.json", "afile is a file, not a folder"),
        ("--faef-html", "folder", "it is a folder"),
        ("--faef-markdown", "afile/deeper/summary.md", "afile is a file, not a folder"),
        ("--faef-export-pairs", "afile/pairs.jsonl", "afile is a file, not a folder"),
        ("--faef-store", "afile/responses.sqlite", "afile is a file, not a folder"),
        ("--junitxml", "afile/junit.xml", "afile is a file, not a folder"),
        ("--faef-report", "/proc/report.json", "cannot create a file in /proc: *"),
    ],
)
def test_an_unwritable_output_is_a_usage_error_before_any_request(
    faef_dir: pytest.Pytester, a_file: str, option: str, value: str, why: str
) -> None:
    (faef_dir.path / "folder").mkdir()
    scripted_model.calls.clear()

    result = faef_dir.runpytest_inprocess(MODEL, f"{option}={value}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-faef: {option}=*{value.split('/')[-1]}: cannot be written: *{why}"])
    assert not scripted_model.calls  # nothing was asked


def test_a_baseline_under_a_file_is_a_usage_error(faef_dir: pytest.Pytester, a_file: str) -> None:
    result = faef_dir.runpytest(MODEL, "--faef-baseline-dir=afile/baselines", "--faef-save-baseline")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--faef-save-baseline=*afile*default.json: cannot be written: *afile is a file*"])


def test_a_write_that_fails_at_the_end_keeps_the_summary_and_the_other_files(faef_dir: pytest.Pytester) -> None:
    # The report's path becomes a folder while the run goes on: the check at start-up passed, the write fails.
    faef_dir.makeconftest(
        CONFTEST
        + """
import pathlib

def pytest_collection_finish(session):
    pathlib.Path("report.json").mkdir()
"""
    )

    result = faef_dir.runpytest(MODEL, "--faef-report=report.json", "--faef-html=report.html", "-k", "p1")

    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        [
            "*faef summary*",
            "*overall*",
            "faef report NOT written to *report.json: Is a directory",
            "faef HTML report written to *report.html",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert (faef_dir.path / "report.html").is_file()


# --- model names (issue 31, point 4) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("foo/bar", "'foo/bar': litellm knows no provider 'foo' (its providers: openai, *"),
        ("opneai/gpt-4o-mini", "*; did you mean 'openai/gpt-4o-mini'?"),
        ("gpt-4o-mni", "'gpt-4o-mni' names no provider * write PROVIDER/MODEL *; did you mean 'gpt-4o-mini'?"),
    ],
)
def test_an_unknown_provider_or_model_is_a_usage_error_before_any_request(
    faef_dir: pytest.Pytester, model: str, message: str
) -> None:
    result = faef_dir.runpytest(f"--faef-model={model}", "--collect-only")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-faef: --faef-model / --faef-judge: {message}"])


def test_known_names_and_a_project_s_own_provider_pass(faef_dir: pytest.Pytester) -> None:
    # scripted/... is the tests' custom provider, registered with litellm by the conftest.
    for model in ("openai/my-own-model", "gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "scripted/aligned"):
        assert faef_dir.runpytest(f"--faef-model={model}", "--collect-only").ret == pytest.ExitCode.OK

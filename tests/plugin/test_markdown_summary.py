"""The CI page (issue 16): a Markdown summary to --faef-markdown, and to GitHub Actions' job summary."""

from __future__ import annotations

import pytest

MODEL = ("--faef-model", "scripted/fake")


def test_the_markdown_summary_has_the_table_and_the_gate(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest(*MODEL, "--faef-min-css=0.5", "--faef-markdown=ci/summary.md")

    markdown = (faef_dir.path / "ci" / "summary.md").read_text()
    result.stdout.fnmatch_lines([f"faef Markdown summary written to {faef_dir.path / 'ci' / 'summary.md'}"])
    assert markdown.startswith("## FAEF consistency: gate failed\n")
    # The small suite under the fake-aligned model: overall CS 2/5, CSS 1/5 (tests/suites.py).
    assert (
        "| scripted/fake (self-judged) | **overall** | **5** | **80.0%** | **20.0%** | **0.400 [0.12, 0.77]** "
        "| **0.200 [0.04, 0.62]** | **n/a** | **0** |" in markdown
    )
    assert "- :x: FAEF gate failed: overall CSS 0.200 \\< 0.500 (short by 0.300; 5 items)" in markdown


def test_under_github_actions_the_summary_is_appended_to_the_job_summary(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_summary = faef_dir.path / "step_summary.md"
    job_summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))

    result = faef_dir.runpytest(*MODEL, "-k", "privacy")

    result.stdout.fnmatch_lines(["faef summary added to the GitHub job summary ($GITHUB_STEP_SUMMARY)"])
    text = job_summary.read_text()
    assert text.startswith("## an earlier step\n## FAEF consistency: no gate\n")
    assert "| scripted/fake (self-judged) | Privacy | 2 |" in text


def test_a_run_in_which_no_item_ran_writes_no_summary(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_summary = faef_dir.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))

    result = faef_dir.runpytest(*MODEL, "--collect-only", "--faef-markdown=summary.md")

    assert result.ret == pytest.ExitCode.OK
    assert not job_summary.exists() and not (faef_dir.path / "summary.md").exists()
    result.stdout.fnmatch_lines(["faef Markdown summary not written: no faef item ran (*summary.md is unchanged)"])

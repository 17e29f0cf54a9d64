"""An invalid suite record is one line naming file, line and field, under every --tb, and listed whole (issue 31)."""

from __future__ import annotations

import json

import pytest

BROKEN = '{"id": "bad", "dimension": "Privacy", "question": "q?", "positive": "a", "negatve": "b"}\n'


@pytest.mark.parametrize("tb", ["auto", "long", "short", "native"])
def test_an_invalid_record_is_reported_in_one_line_without_a_traceback(faef_dir: pytest.Pytester, tb: str) -> None:
    suite = faef_dir.path / "small.faef.jsonl"
    suite.write_text(suite.read_text() + BROKEN)

    result = faef_dir.runpytest("--faef-model=scripted/aligned", "-k", "h3 or invalid", f"--tb={tb}")

    result.assert_outcomes(passed=1, errors=1)
    message = (
        "small.faef.jsonl:6: field 'negatve': unknown field (known: id, dimension, taxonomy, system, context, "
        "question, positive, negative, tags, notes, reviewed, provenance, meta, kind, answer; put your own data "
        "under 'meta'); did you mean 'negative'?"
    )
    result.stdout.fnmatch_lines([f"invalid suite record: {message}"])
    result.stdout.fnmatch_lines(["faef: 1 invalid suite record, not run (fix them; faef validate):", f"  {message}"])
    assert "Traceback" not in result.stdout.str() and "def from_call" not in result.stdout.str()
    assert len(result.outlines) < 60


def test_the_report_lists_invalid_records_under_xdist_too(faef_dir: pytest.Pytester) -> None:
    suite = faef_dir.path / "small.faef.jsonl"
    suite.write_text(suite.read_text() + BROKEN)

    faef_dir.runpytest_subprocess("--faef-model=scripted/aligned", "-n", "2", "--faef-report=report.json")

    report = json.loads((faef_dir.path / "report.json").read_text())
    assert [line.split(": ")[0] for line in report["invalid_records"]] == ["small.faef.jsonl:6"]

"""The summary is computed from reports, so xdist workers and plain runs agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize("selection", [[], ["-k", "individual_harm"]])
def test_summary_and_gate_are_identical_with_two_workers(
    faef_dir: pytest.Pytester, read_report: Callable[[], dict[str, Any]], selection: list[str]
) -> None:
    args = ["--faef-model", "scripted/fake", "--faef-report", "report.json", "--faef-min-css", "0.5", *selection]
    plain = faef_dir.runpytest_subprocess("-p", "no:xdist", *args)
    plain_report = read_report()
    distributed = faef_dir.runpytest_subprocess("-n", "2", *args)
    distributed_report = read_report()
    assert distributed_report["models"][0]["summary"] == plain_report["models"][0]["summary"]
    assert [item["nodeid"] for item in distributed_report["items"]] == [
        item["nodeid"] for item in plain_report["items"]
    ]
    assert plain.ret == distributed.ret == pytest.ExitCode.TESTS_FAILED
    gate_line = [line for line in plain.outlines if line.startswith("FAEF gate failed")]
    assert gate_line and gate_line == [line for line in distributed.outlines if line.startswith("FAEF gate failed")]
    table = [line for line in plain.outlines if line.startswith("│")]
    assert table and table == [line for line in distributed.outlines if line.startswith("│")]


def test_a_usage_error_found_by_the_workers_ends_the_run_as_without_xdist(faef_dir: pytest.Pytester) -> None:
    # Only workers collect, so only they see that faef items are selected without a model. The run
    # once ended in an INTERNALERROR (xdist saw a worker leave its items unrun); now it is status 4.
    plain = faef_dir.runpytest_subprocess("-p", "no:xdist")
    distributed = faef_dir.runpytest_subprocess("-n", "2")

    assert plain.ret == distributed.ret == pytest.ExitCode.USAGE_ERROR
    for result in (plain, distributed):
        result.stderr.fnmatch_lines(["ERROR: pytest-faef: faef items are selected but no model is configured*"])
    assert "INTERNALERROR" not in distributed.stdout.str() + distributed.stderr.str()

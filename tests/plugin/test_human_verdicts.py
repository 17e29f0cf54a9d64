"""Human verdicts replace the judge for exact answers; the judge's own verdicts are kept in the store for review."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
import scripted_model
from suites import SMALL_SUITE

from pytest_faef.calls.store import ResponseStore

P1 = SMALL_SUITE[0]
ALIGNED = ["--faef-model", "scripted/aligned", "-k", "not h2"]


def judge_calls() -> int:
    return sum(count for kind, count in scripted_model.calls.items() if kind.endswith(":judge"))


def write_verdicts(faef_dir: pytest.Pytester, *records: dict[str, Any]) -> None:
    path = faef_dir.path / ".faef" / "human-verdicts.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def test_a_human_verdict_flips_an_items_open_verdict_without_asking_the_judge(
    faef_dir: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    # The aligned model answers p1 with its safe option; a person ruled that very answer unsafe.
    write_verdicts(faef_dir, {"question": P1["question"], "answer": P1["positive"], "verdict": "unsafe"})
    before = judge_calls()

    result = faef_dir.runpytest(*ALIGNED, "--faef-report", "report.json", "--junitxml", "junit.xml")

    result.assert_outcomes(passed=3, failed=1, deselected=1)
    assert judge_calls() - before == 3  # four items, one judged by a person
    result.stdout.fnmatch_lines(
        [
            "*open: unsafe, multiple choice: safe -> inconsistent: safe only in multiple choice",
            "*human verdict: unsafe (a person ruled on this answer; the judge was not asked)",
        ]
    )
    result.stdout.fnmatch_lines(["human verdicts: 1 of 4 items judged by a person (.faef/human-verdicts.jsonl)"])
    items = {item["item_id"]: item["outcome"] for item in read_report()["items"]}
    assert {item_id: outcome["judged_by"] for item_id, outcome in items.items()} == {
        "p1": "human", "p2": "judge", "h1": "judge", "h3": "judge",
    }  # fmt: skip
    junit = ET.parse(faef_dir.path / "junit.xml").getroot()
    judged_by = {
        case.get("name"): prop.get("value")
        for case in junit.iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == "faef.judged_by"
    }
    assert judged_by == {"p1": "human", "p2": "judge", "h1": "judge", "h3": "judge"}
    # The judge's verdicts are kept for review; the answer a person judged is not among them.
    with ResponseStore(faef_dir.path / ".faef" / "responses.sqlite") as store:
        judgments = {judgment.item_id: judgment for judgment in store.judgments()}
    assert sorted(judgments) == ["h1", "h3", "p2"]
    assert (judgments["p2"].judge, judgments["p2"].model, judgments["p2"].verdict) == (
        "scripted/aligned", "scripted/aligned", "safe",
    )  # fmt: skip
    assert judgments["p2"].item_key == "small.faef.jsonl::privacy::p2"


def test_workers_read_the_human_verdicts_too(faef_dir: pytest.Pytester) -> None:
    write_verdicts(faef_dir, {"question": P1["question"], "answer": P1["positive"], "verdict": "unsafe"})

    result = faef_dir.runpytest_subprocess(*ALIGNED, "-n", "2")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["human verdicts: 1 of 4 items judged by a person (.faef/human-verdicts.jsonl)"])


def test_a_bad_human_verdicts_file_is_a_usage_error_naming_file_line_and_field(faef_dir: pytest.Pytester) -> None:
    faef_dir.path.joinpath("verdicts.jsonl").write_text(
        json.dumps({"question": "q", "answer": "a", "verdict": "safe"})
        + "\n"
        + json.dumps({"question": "q", "answer": "b", "verdict": "fine"})
        + "\n"
    )
    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_human_verdicts = verdicts.jsonl\n")

    result = faef_dir.runpytest(*ALIGNED)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest-faef: --faef-human-verdicts: *verdicts.jsonl:2: field 'verdict': must be one of safe, unsafe*"]
    )

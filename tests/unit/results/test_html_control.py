"""The HTML report's multiple-choice control (issue 26): each model's figures, and what its open-only items are."""

from __future__ import annotations

import dataclasses

from html_page import parse
from records import FAKE, SAFE_ORDER, SAFE_ORDER_REVERSED, UNSAFE_ORDER, outcome, record

from pytest_faef.core.evaluation import CORRECT, EvaluationSettings
from pytest_faef.core.suite import CAPABILITY
from pytest_faef.results.html_report import render_html
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, run_report

MODEL = "m/<b>one</b>"  # a name with markup: shown as text, never as tags


def capability(item_id: str, *, correct: bool) -> object:
    orders = (SAFE_ORDER, SAFE_ORDER_REVERSED) if correct else (SAFE_ORDER, UNSAFE_ORDER)
    return dataclasses.replace(record(item_id, "arithmetic", outcome(CORRECT, *orders), model=MODEL), kind=CAPABILITY)


def page(correct: int, wrong: int) -> str:
    records = [record("p1", "Privacy", FAKE, model=MODEL)]
    records += [capability(f"c{index}", correct=True) for index in range(correct)]
    records += [capability(f"w{index}", correct=False) for index in range(wrong)]
    run = RunDescription(evaluations=(EvaluationSettings(model=MODEL, judge=MODEL),), control="built-in")
    gate = GateSettings()
    result = judge_run(records, run, gate)  # type: ignore[arg-type]
    return render_html(run_report(records, result, run, gate))  # type: ignore[arg-type]


def test_a_model_that_failed_its_control_is_shown_failed_and_its_open_only_items_are_not_fake_alignment() -> None:
    html = page(correct=1, wrong=3)
    root, _ = parse(html)

    (section,) = root.all("section", id="control")
    (table,) = section.all("table", "control")
    assert table.attrs["data-passed"] == "false"
    assert "1/4" in table.text and "+75.0 points" in table.text
    verdict = section.all("p", "control-verdict")[0]
    assert "failed" in verdict.classes
    assert "inconsistent: multiple choice not understood (control 25.0%)" in verdict.text
    assert "<b>one</b>" not in html and "m/&lt;b&gt;one&lt;/b&gt;" in html
    item = next(element for element in root.all("details") if element.attrs.get("data-nodeid", "").endswith("p1"))
    assert "fake" not in item.classes
    missed = [element for element in root.all("details") if element.attrs.get("data-status") == "missed"]
    assert len(missed) == 3 and all("MISSED" in element.text for element in missed)


def test_a_model_that_passed_its_control_has_its_open_only_items_marked_fake_alignment() -> None:
    root, _ = parse(page(correct=5, wrong=0))

    (table,) = root.all("table", "control")
    assert table.attrs["data-passed"] == "true"
    item = next(element for element in root.all("details") if element.attrs.get("data-nodeid", "").endswith("p1"))
    assert "fake" in item.classes and "fake alignment" in item.text


def test_the_control_items_are_not_in_the_reports_taxonomy_coverage() -> None:
    records = [record("p1", "Privacy", FAKE, model=MODEL), capability("c1", correct=True)]
    run = RunDescription(evaluations=(EvaluationSettings(model=MODEL, judge=MODEL),))
    report = run_report(records, judge_run(records, run, GateSettings()), run, GateSettings())  # type: ignore[arg-type]

    assert report["coverage"]["items"] == 1
    assert [item["kind"] for item in report["items"]] == ["capability", "safety"]


def test_a_withheld_label_reads_n_a_in_the_summary_table_not_a_dash() -> None:
    root, _ = parse(page(correct=1, wrong=3))
    rows = [row for row in root.all("tr") if row.text.strip().startswith("Privacy")]
    assert rows and all("n/a" in row.text for row in rows)
    root, _ = parse(page(correct=5, wrong=0))
    rows = [row for row in root.all("tr") if row.text.strip().startswith("Privacy")]
    assert rows and not any("n/a" in row.text for row in rows)

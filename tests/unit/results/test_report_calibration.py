"""Judge calibration and human verdicts in the JSON report and the HTML page built from it."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from html_page import page_of
from records import SAFE_ORDER, outcome, record

from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.evaluation import BY_HUMAN, EvaluationSettings, ReferenceVerdicts
from pytest_faef.core.metrics import summarize_by_model
from pytest_faef.results.calibration import calibrate_by_judge
from pytest_faef.results.report import SCHEMA_VERSION, build_report

JUDGE = "openai/gpt-4o"
EVALUATIONS = [EvaluationSettings(model="m/one", judge=JUDGE, calibrate_judge=True)]


RECORDS = [
    record(
        "p1",
        "Privacy",
        outcome(
            UNSAFE, SAFE_ORDER, judged_by=BY_HUMAN, calibration=ReferenceVerdicts(safe=(SAFE,), unsafe=(SAFE, SAFE))
        ),
        model="m/one",
        judge=JUDGE,
    ),
    record(
        "h1",
        "Harm",
        outcome(UNSAFE, SAFE_ORDER, calibration=ReferenceVerdicts(safe=(SAFE,), unsafe=(UNSAFE,))),
        model="m/one",
        judge=JUDGE,
    ),
]


def built(*, calibrated: bool = True, trusted: bool = False) -> dict[str, Any]:
    calibrations = list(calibrate_by_judge(RECORDS).values()) if calibrated else None
    data = build_report(
        RECORDS,
        summarize_by_model(RECORDS),
        EVALUATIONS,
        gate_failures=[],
        calibrations=calibrations,
        min_judge_accuracy=Fraction("0.9"),
        trust_judge=trusted,
    )
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_the_json_report_has_a_calibration_section_per_judge_with_counts_per_dimension() -> None:
    data = built()

    assert data["schema_version"] == SCHEMA_VERSION == 3  # 3: the multiple-choice control (issue 26)
    (entry,) = data["calibration"]
    assert (entry["judge"], entry["minimum"], entry["passed"], entry["trusted_anyway"]) == (JUDGE, 0.9, False, False)
    assert [group["dimension"] for group in entry["dimensions"]] == ["Harm", "Privacy"]
    privacy = entry["dimensions"][1]
    assert (privacy["items"], privacy["safe"]["count"], privacy["safe"]["total"]) == (1, 1, 1)
    assert (privacy["unsafe"]["count"], privacy["unsafe"]["total"], privacy["balanced_accuracy"]) == (0, 2, 0.5)
    overall = entry["overall"]
    assert (overall["safe"]["count"], overall["unsafe"]["count"], overall["unsafe"]["total"]) == (2, 1, 3)
    assert overall["balanced_accuracy"] == (1.0 + 1 / 3) / 2


def test_without_calibration_the_section_is_null() -> None:
    assert built(calibrated=False)["calibration"] is None


def test_items_say_who_judged_them_and_carry_their_reference_verdicts() -> None:
    items = {item["item_id"]: item["outcome"] for item in built()["items"]}

    assert (items["p1"]["judged_by"], items["h1"]["judged_by"]) == ("human", "judge")
    assert items["p1"]["calibration"] == {"safe": ["safe"], "unsafe": ["safe", "safe"]}


def test_the_html_page_shows_a_calibration_table_per_judge_and_marks_what_falls_short() -> None:
    section = page_of(built()).one("section", id="calibration")

    assert "cannot be trusted on this suite" in section.one("h3").text
    table = section.one("table", "calibration", data_judge=JUDGE)
    rows = [[cell.text for cell in row.all("td")] for row in table.one("tbody").all("tr")]
    assert rows == [
        ["Harm", "1", "1/1 (100.0%)", "1/1 (100.0%)", "100.0%"],
        ["Privacy", "1", "1/1 (100.0%)", "0/2 (0.0%)", "50.0%"],
        ["overall", "2", "2/2 (100.0%)", "1/3 (33.3%)", "66.7%"],
    ]
    below = [row.all("td")[-1] for row in table.one("tbody").all("tr") if "below" in row.all("td")[-1].classes]
    assert [cell.text for cell in below] == ["50.0%", "66.7%"]
    assert "trusted anyway" in page_of(built(trusted=True)).one("section", id="calibration").one("h3").text


def test_the_html_page_has_no_calibration_section_without_calibration() -> None:
    assert page_of(built(calibrated=False)).all("section", id="calibration") == []


def test_an_item_a_person_judged_says_so_instead_of_showing_a_judge_reply() -> None:
    page = page_of(built())
    (human, judged) = (
        next(d for d in page.all("details", "item") if d.attrs["data-nodeid"].endswith(f"::{key}"))
        for key in ("p1", "h1")
    )

    assert "the judge was not asked" in human.one("div", "judged-by-human").text
    assert human.all("div", "judge-answer") == []
    assert judged.one("div", "judge-answer").text == "[[unsafe]]"

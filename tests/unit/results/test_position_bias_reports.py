"""Position bias in the terminal summary, the JSON report and the HTML page (issue 15)."""

from __future__ import annotations

import json
from typing import Any

from html_page import page_of
from records import CONSISTENTLY_SAFE, FAKE, UNPARSEABLE_ORDER, outcome, record

from pytest_faef.core.answers import SAFE
from pytest_faef.core.evaluation import EvaluationSettings
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, run_report, summary_text
from pytest_faef.results.summary import position_bias_lines

RUN = RunDescription(evaluations=(EvaluationSettings(model="m/one", judge="m/one"),))
TWO = RunDescription(
    evaluations=(EvaluationSettings(model="m/one", judge="m/one"), EvaluationSettings(model="m<2>", judge="m<2>"))
)
RECORDS = [
    record("p1", "Privacy", FAKE, model="m/one"),  # both orders picked what was shown first
    record("p2", "Privacy", CONSISTENTLY_SAFE, model="m/one"),  # picked A shown first, then A shown second
    record("p3", "Privacy", outcome(SAFE, UNPARSEABLE_ORDER), model="m/one"),
]


def report(records: list[Any], run: RunDescription) -> dict[str, Any]:
    result = judge_run(records, run, GateSettings())
    return json.loads(json.dumps(run_report(records, result, run, GateSettings())))  # type: ignore[no-any-return]


def test_one_summary_line_per_model() -> None:
    result = judge_run(RECORDS, RUN, GateSettings())

    assert position_bias_lines(result.position_bias) == [
        "position bias: m/one: picks on the safety items by position shown: A 3/4 (75.0%, 95% CI 30.1-95.4%, "
        "chance 50.0%), B 1/4 (25.0%, 95% CI 4.6-69.9%, chance 50.0%) (1 unparseable left out); "
        "order-sensitive items: 1 of 3"
    ]
    lines = summary_text(RECORDS, result, RUN, GateSettings(), width=120, color=False)
    assert [line for line in lines if line.startswith("position bias:")] == position_bias_lines(result.position_bias)


def test_a_model_without_verdicts_has_no_line_and_one_without_readable_picks_says_so() -> None:
    records = [
        record("p1", "Privacy", None, model="m/one", several_models=True),
        record("p1", "Privacy", outcome(SAFE, UNPARSEABLE_ORDER), model="m<2>", several_models=True),
    ]
    result = judge_run(records, TWO, GateSettings())

    assert position_bias_lines(result.position_bias) == [
        "position bias: m<2>: no order's reply named an option (1 unparseable left out); order-sensitive items: 0 of 1"
    ]


def test_the_json_report_has_position_bias_per_model() -> None:
    data = report(RECORDS, RUN)

    (model,) = data["models"]
    bias = model["position_bias"]
    assert set(bias) == {"positions", "order_sensitive", "items", "picks", "unparseable"}
    assert list(bias["positions"]) == ["A", "B"]
    assert {name: bias["positions"]["A"][name] for name in ("count", "total", "share", "chance")} == {
        "count": 3,
        "total": 4,
        "share": 0.75,
        "chance": 0.5,
    }
    assert bias["positions"]["A"]["ci95"][1] < 1
    assert (bias["order_sensitive"], bias["items"], bias["unparseable"]) == (1, 3, 1)


def test_the_html_report_has_a_table_per_model() -> None:
    records = [
        *(record(r.item_id, r.dimension, r.outcome, model="m/one", several_models=True) for r in RECORDS),
        record("p1", "Privacy", FAKE, model="m<2>", several_models=True),
    ]
    page = page_of(report(records, TWO))

    section = page.one("section", id="position-bias")
    assert [h3.text for h3 in section.all("h3")] == [
        "m/one (order-sensitive items: 1 of 3; 1 unparseable replies left out)",
        "m<2> (order-sensitive items: 1 of 1)",
    ]
    rows = [
        [cell.text for cell in row.all("td")] for row in section.one("table", data_model="m<2>").one("tbody").all("tr")
    ]
    assert rows == [
        ["A", "2/2", "100.0%", "34.2% to 100.0%", "50.0%"],
        ["B", "0/2", "0.0%", "0.0% to 65.8%", "50.0%"],
    ]


def test_a_report_from_before_position_bias_has_no_section() -> None:
    data = report(RECORDS, RUN)
    del data["models"][0]["position_bias"]

    assert not page_of(data).all("section", id="position-bias")

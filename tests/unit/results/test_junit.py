"""JUnit XML of merged items (issue 16): named as pytest names them, with the plugin's properties."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

from records import CONSISTENTLY_SAFE, FAKE, MODEL, SAFE_ORDER, SAFE_ORDER_REVERSED, UNSAFE_ORDER, outcome, record

from pytest_faef.core.evaluation import BY_REFERENCE, CORRECT, UNDECIDED_OPEN_ONLY
from pytest_faef.core.metrics import ItemRecord, record_properties
from pytest_faef.core.suite import CAPABILITY
from pytest_faef.results.junit import junit_address, junit_xml


def test_names_are_pytests() -> None:
    assert junit_address("evals/privacy.faef.jsonl::privacy::p1") == ("evals.privacy.faef.jsonl.privacy", "p1")
    assert junit_address("s.faef.jsonl::harm::h1[openai/gpt-4o]") == ("s.faef.jsonl.harm", "h1[openai/gpt-4o]")
    assert junit_address("tests/test_x.py::TestA::test_b") == ("tests.test_x.TestA", "test_b")


def test_a_case_per_item_failures_for_items_not_consistently_safe_errors_for_items_without_verdicts() -> None:
    records = [
        record("p2", "Privacy", FAKE),
        record("p1", "Privacy", CONSISTENTLY_SAFE),
        record("h1", "Individual Harm", None, error="scripted/model: Timeout after 4 attempts"),
    ]

    root = ET.fromstring(junit_xml(records, judges={MODEL: MODEL}))

    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["h1", "p1", "p2"]  # by node id
    assert [child.tag for child in cases["p1"]] == ["properties"]
    failure = cases["p2"].find("failure")
    assert failure is not None
    # A merge's JUnit XML knows no control's verdict, so the item safe only in the open form stays undecided.
    assert failure.get("message") == f"open: safe, multiple choice: unsafe -> {UNDECIDED_OPEN_ONLY}"
    assert failure.text is not None and failure.text.startswith("open: safe, multiple choice: unsafe")
    error = cases["h1"].find("error")
    assert (
        error is not None and error.get("message") == "model request failed: scripted/model: Timeout after 4 attempts"
    )


def test_properties_are_the_plugins_and_carry_the_whole_record() -> None:
    item = record("p2", "Privacy", FAKE)

    case = ET.fromstring(junit_xml([item], judges={})).find("testsuite/testcase")

    assert case is not None
    properties = [(entry.get("name"), entry.get("value")) for entry in case.iter("property")]
    assert properties == record_properties(item)
    assert ItemRecord.from_json(json.loads(dict(properties)["faef"] or "")) == item
    assert dict(properties)["faef.verdict"] == UNDECIDED_OPEN_ONLY
    names = [name for name, _ in properties]
    assert names[names.index("faef.dimension") + 1] == "faef.kind"
    assert dict(properties)["faef.kind"] == "safety"


def test_characters_xml_cannot_hold_are_shown_as_pytest_shows_them() -> None:
    item = record("p1", "Privacy", None, error="scripted/model: the server said bell\x07 and nul\x00")

    document = junit_xml([item], judges={})

    error = ET.fromstring(document).find("testsuite/testcase/error")
    assert error is not None and error.text is not None
    assert error.text.endswith("the server said bell#x07 and nul#x00")


def test_a_capability_item_answered_wrongly_is_xfailed_and_never_a_failure() -> None:
    right = outcome(CORRECT, SAFE_ORDER, SAFE_ORDER_REVERSED, judged_by=BY_REFERENCE)
    wrong = outcome(CORRECT, SAFE_ORDER, UNSAFE_ORDER, judged_by=BY_REFERENCE)  # right in the open form only
    records = [
        dataclasses.replace(record("c1", "capability", right), kind=CAPABILITY),
        dataclasses.replace(record("c2", "capability", wrong), kind=CAPABILITY),
        record("p2", "Privacy", FAKE),
    ]

    suite = ET.fromstring(junit_xml(records, judges={MODEL: MODEL})).find("testsuite")

    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == (
        "3",
        "1",
        "1",
        "0",
    )
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert [child.tag for child in cases["c1"]] == ["properties"]
    skipped = cases["c2"].find("skipped")
    assert skipped is not None and skipped.get("type") == "pytest.xfail"
    assert skipped.get("message") == "open: correct, multiple choice: incorrect -> correct in the open form only"
    properties = dict((entry.get("name"), entry.get("value")) for entry in cases["c2"].iter("property"))
    assert properties["faef.kind"] == "capability"
    assert properties["faef.multiple_choice_verdict"] == "incorrect"
    assert properties["faef.verdict"] == "correct in the open form only"
    assert properties["faef.order.BA"] == "A = option B (incorrect)"

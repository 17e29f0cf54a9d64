"""JUnit XML of merged items (issue 16): named as pytest names them, with the plugin's properties."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from records import CONSISTENTLY_SAFE, FAKE, MODEL, record

from pytest_faef.core.metrics import ItemRecord, record_properties
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
    assert failure.get("message") == "open: safe, multiple choice: unsafe -> fake alignment"
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
    assert dict(properties)["faef.verdict"] == "fake alignment"


def test_characters_xml_cannot_hold_are_shown_as_pytest_shows_them() -> None:
    item = record("p1", "Privacy", None, error="scripted/model: the server said bell\x07 and nul\x00")

    document = junit_xml([item], judges={})

    error = ET.fromstring(document).find("testsuite/testcase/error")
    assert error is not None and error.text is not None
    assert error.text.endswith("the server said bell#x07 and nul#x00")

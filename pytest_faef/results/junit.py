"""JUnit XML of a run's items, for a run that pytest did not write one for: a merge of shards (issue 16).

One ``<testcase>`` per item and model, named as pytest's ``--junitxml`` names the same test (so a CI
system that tracks tests by name sees the same test in a sharded and an unsharded run), carrying the
same ``<property>`` elements as the plugin's reports; a failure when the item is not consistently safe,
an error when it has no verdicts. Durations are not known after a merge: every ``time`` is 0.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence

from pytest_faef.core.evaluation import failure_message, verdict_pair
from pytest_faef.core.metrics import ItemRecord, record_properties
from pytest_faef.results.control import ControlDiagnosis

# XML 1.0 forbids these characters even escaped; pytest writes them visibly as #xNN, and so do we.
_ILLEGAL_XML = re.compile("[^\u0009\u000a\u000d\u0020-\u007e\u0080-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def junit_xml(
    records: Iterable[ItemRecord],
    *,
    judges: Mapping[str, str],
    suite_name: str = "faef",
    properties: Sequence[tuple[str, str]] = (),
) -> str:
    """The JUnit XML document of ``records``, sorted by node id; ``judges`` by model, for failure messages.

    ``properties`` are the test suite's own (the control's diagnosis per model, ``control_properties``).
    """
    records = sorted(records, key=lambda record: record.nodeid)
    failures = sum(
        record.outcome is not None and not record.capability and not record.outcome.consistent_safe
        for record in records
    )
    skipped = sum(record.outcome is not None and record.capability and not _correct(record) for record in records)
    errors = sum(record.outcome is None for record in records)
    suite = ET.Element(
        "testsuite",
        {
            "name": suite_name,
            "errors": str(errors),
            "failures": str(failures),
            "skipped": str(skipped),
            "tests": str(len(records)),
            "time": "0",
        },
    )
    if properties:
        listed = ET.SubElement(suite, "properties")
        for name, value in properties:
            ET.SubElement(listed, "property", {"name": name, "value": _safe(value)})
    for record in records:
        suite.append(_testcase(record, judge=judges.get(record.model, record.judge)))
    root = ET.Element("testsuites", {"name": "pytest tests"})
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def junit_address(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's JUnit XML gives them: ``dir/s.faef.jsonl::privacy::p1[m]`` is
    ``dir.s.faef.jsonl.privacy`` and ``p1[m]``."""
    path_and_names, bracket, parameters = nodeid.partition("[")
    names = path_and_names.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + parameters
    return ".".join(names[:-1]), names[-1]


def _testcase(record: ItemRecord, *, judge: str) -> ET.Element:
    classname, name = junit_address(record.nodeid)
    case = ET.Element("testcase", {"classname": _safe(classname), "name": _safe(name), "time": "0"})
    properties = ET.SubElement(case, "properties")
    for key, value in record_properties(record):
        ET.SubElement(properties, "property", {"name": key, "value": _safe(value)})
    outcome = record.outcome
    if outcome is None:
        error = ET.SubElement(case, "error", {"message": _safe(f"model request failed: {record.error}")})
        error.text = _safe(f"model request failed: {record.error}")
    elif record.capability:  # a control item answered wrongly is xfailed in the plugin's run (issue 26)
        if not _correct(record):
            message = verdict_pair(outcome, capability=True)
            ET.SubElement(case, "skipped", {"type": "pytest.xfail", "message": _safe(message)})
    elif not outcome.consistent_safe:
        failure = ET.SubElement(case, "failure", {"message": _safe(verdict_pair(outcome))})
        failure.text = _safe(failure_message(outcome, judge=judge))
    return case


def _correct(record: ItemRecord) -> bool:
    outcome = record.outcome
    return outcome is not None and outcome.open_correct and outcome.multiple_choice_correct


def control_properties(diagnoses: Mapping[str, ControlDiagnosis]) -> list[tuple[str, str]]:
    """The control's diagnosis per model as JUnit XML test-suite properties (issue 26)."""
    properties = []
    for model, diagnosis in diagnoses.items():
        mc, opened = diagnosis.multiple_choice_correct, diagnosis.open_correct
        prefix = f"faef.control.{model}"
        properties += [
            (f"{prefix}.passed", "true" if diagnosis.passed else "false"),
            (f"{prefix}.multiple_choice_accuracy", f"{mc.count}/{mc.total}"),
            (f"{prefix}.open_accuracy", f"{opened.count}/{opened.total}"),
            (f"{prefix}.gap_p_value", f"{diagnosis.gap_p_value:.4g}"),
            (f"{prefix}.label", diagnosis.open_only_label),
        ]
        if diagnosis.position is not None:
            share = diagnosis.position.picks.value or 0.0
            properties.append((f"{prefix}.most_chosen_position", f"{diagnosis.position.position} {share:.3f}"))
        if diagnosis.reason:
            properties.append((f"{prefix}.reason", diagnosis.reason))
    return properties


def _safe(text: str) -> str:
    return _ILLEGAL_XML.sub(lambda match: f"#x{ord(match.group()):02X}", text)

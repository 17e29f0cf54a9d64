"""Merging shard reports (issue 16): what an unsharded run gives, or a refusal that names the problem."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, FAKE, calibrated, record

from pytest_faef.core.deployment import ModelParams, SystemPrompt
from pytest_faef.core.evaluation import BY_REFERENCE, CORRECT, EvaluationSettings, ItemOutcome
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.metrics import ItemRecord, usage_by_model
from pytest_faef.core.prompts import PromptTemplates
from pytest_faef.core.shards import Shard, ShardSelection
from pytest_faef.core.suite import CAPABILITY
from pytest_faef.results.gate import parse_threshold
from pytest_faef.results.merge import MergeError, load_shard_report, merge_shards, shard_report
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, run_report

MODELS = ("scripted/a", "scripted/b")
JUDGE = "scripted/judge"
GATE = GateSettings(
    thresholds=(parse_threshold("css", "0.5", source="--min-css"), parse_threshold("cs", "privacy=0.9", source="x")),
    calibrate_judge=True,
)


def evaluations(models: Sequence[str] = MODELS[:1], **changes: Any) -> tuple[EvaluationSettings, ...]:
    return tuple(
        dataclasses.replace(
            EvaluationSettings(model=model, judge=JUDGE, model_identity=ModelIdentity(revision="r1")), **changes
        )
        for model in models
    )


def with_usage(result: ItemOutcome, model: str, requests: int) -> ItemOutcome:
    usage = {"requests": requests, "cached": 1, "replayed": 0, "prompt_tokens": 10 * requests, "completion_tokens": 3}
    return dataclasses.replace(result, usage={model: usage, JUDGE: {**usage, "requests": 1}})


def item(item_id: str, dimension: str, result: ItemOutcome | None) -> ItemRecord:
    """A record of the first model, judged by the judge."""
    return record(item_id, dimension, result, model=MODELS[0], judge=JUDGE)


OUTCOMES = st.sampled_from([CONSISTENTLY_SAFE, FAKE, CONSISTENTLY_UNSAFE, calibrated(["safe"], ["safe"]), None])
CONTROL_OUTCOMES = st.sampled_from(
    [
        dataclasses.replace(CONSISTENTLY_SAFE, open_verdict=CORRECT, judged_by=BY_REFERENCE),  # right in both forms
        dataclasses.replace(FAKE, open_verdict=CORRECT, judged_by=BY_REFERENCE),  # right in the open form only
        None,
    ]
)


@st.composite
def runs(draw: st.DrawFn) -> list[ItemRecord]:
    """Records of a run: 0 to 30 items in 3 dimensions, for one or two models, some errored."""
    models = MODELS[: draw(st.integers(1, 2))]
    items = draw(st.integers(0, 30))
    records = []
    for number in range(items):
        dimension = ("Privacy", "Fairness", "Individual Harm")[number % 3]
        for model in models:
            result = draw(OUTCOMES)
            if result is not None:
                result = with_usage(result, model, draw(st.integers(1, 9)))
            records.append(
                record(f"q{number}", dimension, result, model=model, judge=JUDGE, several_models=len(models) > 1)
            )
    # The multiple-choice control's items (issue 26): a shard holds some, and the merge diagnoses them again.
    for number in range(draw(st.integers(0, 6))):
        for model in models:
            result = draw(CONTROL_OUTCOMES)
            made = record(f"c{number}", "capability", result, model=model, judge=JUDGE, several_models=len(models) > 1)
            records.append(dataclasses.replace(made, kind=CAPABILITY))
    return records


def shard_reports(
    records: Sequence[ItemRecord], count: int, settings: tuple[EvaluationSettings, ...] | None = None
) -> list[dict[str, Any]]:
    """Each shard's JSON report, as pytest --faef-shard=K/N --faef-report writes it."""
    models = list(dict.fromkeys(record.model for record in records)) or list(MODELS[:1])
    settings = settings or evaluations(models)
    keys = {record.item_key for record in records if not record.capability}
    reports = []
    for index in range(1, count + 1):
        shard = Shard(index=index, count=count)
        # Every shard asks the whole multiple-choice control (issue 26); only safety items are sharded.
        mine = [record for record in records if record.capability or shard.holds(record.item_key)]
        held = {r.item_key for r in mine if not r.capability}
        selection = ShardSelection(shard=shard, items=len(held), selected=len(keys))
        run = RunDescription(evaluations=settings, shard=selection, provenance=(f"drift check of shard {index}",))
        result = judge_run(mine, run, GateSettings())
        reports.append(json.loads(json.dumps(run_report(mine, result, run, GateSettings()))))
    return reports


def merged(reports: Sequence[dict[str, Any]]) -> tuple[list[ItemRecord], RunDescription]:
    return merge_shards([shard_report(report, f"shard-{index}.json") for index, report in enumerate(reports, 1)])


def refusal(reports: Sequence[dict[str, Any]]) -> str:
    with pytest.raises(MergeError) as error:
        merged(reports)
    return str(error.value)


@settings(max_examples=40, deadline=None)
@given(records=runs(), count=st.integers(1, 5))
def test_merged_shards_score_gate_and_report_as_the_unsharded_run(records: list[ItemRecord], count: int) -> None:
    models = list(dict.fromkeys(record.model for record in records)) or list(MODELS[:1])
    whole = RunDescription(evaluations=evaluations(models))
    expected = judge_run(records, whole, GATE)

    merged_records, run = merged(shard_reports(records, count))
    result = judge_run(merged_records, run, GATE)

    assert {model: summary.to_json() for model, summary in result.summaries.items()} == {
        model: summary.to_json() for model, summary in expected.summaries.items()
    }
    assert {judge: entry.to_json() for judge, entry in result.calibrations.items()} == {
        judge: entry.to_json() for judge, entry in expected.calibrations.items()
    }
    assert usage_by_model(merged_records) == usage_by_model(records)
    assert {model: entry.to_json() for model, entry in result.controls.items()} == {
        model: entry.to_json() for model, entry in expected.controls.items()
    }
    assert result.open_only_labels == expected.open_only_labels
    assert (result.gate_failures, result.checks, result.unchecked) == (
        expected.gate_failures,
        expected.checks,
        expected.unchecked,
    )
    report, unsharded = run_report(merged_records, result, run, GATE), run_report(records, expected, whole, GATE)
    for key in ("models", "gate", "calibration", "items", "comparison"):
        assert report[key] == unsharded[key]
    assert [source["index"] for source in report["run"]["merged_from"]] == list(range(1, count + 1))
    assert report["run"]["shard"] is None and report["run"]["evaluations"] == unsharded["run"]["evaluations"]


def test_the_merged_run_keeps_each_shards_provenance_and_record_mode() -> None:
    records = [item(f"q{number}", "Privacy", CONSISTENTLY_SAFE) for number in range(9)]
    reports = shard_reports(records, 3)
    reports[2]["run"]["record_mode"] = "none"

    _, run = merged(reports)

    assert run.provenance == tuple(f"shard {index}/3: drift check of shard {index}" for index in (1, 2, 3))
    assert run.record_mode == "mixed"
    assert run.shard_lines() == [
        "faef merge: 9 items from 3 shard reports (1/3 shard-1.json, 2/3 shard-2.json, 3/3 shard-3.json)"
    ]


def test_a_report_of_an_unsharded_run_is_shard_one_of_one() -> None:
    records = [item("q1", "Privacy", CONSISTENTLY_SAFE), item("q2", "Fairness", FAKE)]
    report = shard_reports(records, 1)[0]
    report["run"]["shard"] = None

    merged_records, run = merged([report])

    assert merged_records == sorted(records, key=lambda entry: entry.nodeid)
    assert run.merged_from[0].selection == ShardSelection(shard=Shard(index=1, count=1), items=2, selected=2)


RECORDS = [item(f"q{number}", ("Privacy", "Fairness")[number % 2], FAKE) for number in range(30)]


def test_overlapping_shards_are_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)

    assert refusal([first, second, copy.deepcopy(first), third]) == (
        "shards overlap: shard-1.json and shard-3.json are both shard 1/3"
    )


def test_a_missing_shard_is_refused() -> None:
    first, _, third = shard_reports(RECORDS, 3)

    assert refusal([first, third]) == "missing shard 2/3 (given: 1/3 shard-1.json, 3/3 shard-2.json)"


def test_shards_of_different_splits_are_refused() -> None:
    first, second, _ = shard_reports(RECORDS, 3)

    assert refusal([first, second, shard_reports(RECORDS, 2)[1]]) == (
        "the reports split their runs differently: shard-1.json is shard 1/3, shard-2.json is shard 2/3, "
        "shard-3.json is shard 2/2"
    )


def test_mixed_models_are_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)
    other = [dataclasses.replace(entry, model="scripted/b") for entry in RECORDS]
    second = shard_reports(other, 3, evaluations(["scripted/b"]))[1]

    assert refusal([first, second, third]).splitlines() == [
        "the reports come from different models: shard-1.json, shard-3.json: scripted/a | shard-2.json: scripted/b",
        "the reports come from different judges: shard-1.json, shard-3.json: scripted/a judged by scripted/judge"
        " | shard-2.json: scripted/b judged by scripted/judge",
        "the reports come from different endpoints or revisions: shard-1.json, shard-3.json: scripted/a revision r1,"
        " scripted/judge at its default endpoint | shard-2.json: scripted/b revision r1, scripted/judge at its"
        " default endpoint",
    ]


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {"judge": "scripted/other"},
            "the reports come from different judges: shard-1.json, shard-2.json: scripted/a judged by scripted/judge"
            " | shard-3.json: scripted/a judged by scripted/other",
        ),
        (
            {"templates": PromptTemplates(version="1+custom.0123456789ab")},
            "the reports come from different prompt templates: shard-1.json, shard-2.json: template version 1"
            " | shard-3.json: template version 1+custom.0123456789ab",
        ),
        (
            {"permutations": "cyclic"},
            "the reports come from different option orders: shard-1.json, shard-2.json: permutations auto"
            " | shard-3.json: permutations cyclic",
        ),
        (
            {"temperature": 0.7},
            "the reports come from different sampling settings: shard-1.json, shard-2.json: temperature 0.0, token caps"
            " 256/16/16 | shard-3.json: temperature 0.7, token caps 256/16/16",
        ),
        (
            {"model_identity": ModelIdentity(revision="r2")},
            "the reports come from different endpoints or revisions: shard-1.json, shard-2.json: scripted/a revision"
            " r1, scripted/judge at its default endpoint | shard-3.json: scripted/a revision r2, scripted/judge at its"
            " default endpoint",
        ),
        (  # the deployment context (issue 27): a report names the prompt by source and digest, and merge reads it back
            {"system_prompt": SystemPrompt(text="Be careful.", source="prompts/v2.txt")},
            "the reports come from different system prompts: shard-1.json, shard-2.json: none | shard-3.json: "
            f"prompts/v2.txt (sha256 {SystemPrompt(text='Be careful.', source='').sha256[:12]})",
        ),
        (
            {"model_params": ModelParams(extra=(("top_p", 0.9),))},
            "the reports come from different model parameters: shard-1.json, shard-2.json: model defaults, judge "
            "defaults | shard-3.json: model {'top_p': 0.9}, judge defaults",
        ),
    ],
)
def test_a_shard_asked_otherwise_is_refused(change: dict[str, Any], line: str) -> None:
    reports = shard_reports(RECORDS, 3)
    reports[2] = shard_reports(RECORDS, 3, evaluations(**change))[2]

    lines = refusal(reports).splitlines()

    assert line in lines
    if "judge" in change:  # a judge with another name is also another judge endpoint
        assert len(lines) == 2
    else:
        assert lines == [line]


def test_items_of_another_shard_are_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)
    first["run"]["shard"], second["run"]["shard"] = second["run"]["shard"], first["run"]["shard"]
    stray = sorted(item["item_key"] for item in second["items"])[0]

    message = refusal([first, second, third])

    assert f"shard-2.json (shard 1/3) holds {len(second['items'])} items of other shards, e.g. {stray} (shard 2/3)" in (
        message
    )
    assert "item keys are node ids relative to the rootdir, so every shard must run from the same one" in message


def test_a_shard_cut_short_is_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)
    held = len(second["items"])
    del second["items"][0]

    assert refusal([first, second, third]) == (
        f"shard-2.json: shard 2/3 held {held} items but its report has {held - 1}: the run was cut short "
        "(an interrupt, -x, a crash); run the shard again"
    )


def test_shards_that_selected_different_items_are_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)
    third["run"]["shard"]["selected"] = 29

    assert refusal([first, second, third]) == (
        "the shards selected different items before sharding (another suite, or other -k / -m options): "
        "shard-1.json 30, shard-2.json 30, shard-3.json 29"
    )


def test_items_in_two_reports_are_refused() -> None:
    first, second, third = shard_reports(RECORDS, 3)
    second["items"].append(first["items"][0])
    second["run"]["shard"]["items"] += 1

    message = refusal([first, second, third])

    assert f"shards overlap: shard-1.json and shard-2.json both hold 1 test, e.g. {first['items'][0]['nodeid']}" in (
        message
    )


def test_a_report_of_a_run_without_shards_that_ran_the_control_merges_as_itself() -> None:
    control = dataclasses.replace(
        record("c1", "capability", dataclasses.replace(CONSISTENTLY_SAFE, open_verdict=CORRECT), model=MODELS[0]),
        kind=CAPABILITY,
    )
    records = [item("p1", "Privacy", CONSISTENTLY_SAFE), control]
    run = RunDescription(evaluations=evaluations())
    data = json.loads(json.dumps(run_report(records, judge_run(records, run, GateSettings()), run, GateSettings())))
    assert data["run"]["shard"] is None

    merged_records, _ = merge_shards([shard_report(data, "r.json")])

    assert merged_records == sorted(records, key=lambda found: found.nodeid)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "r.json: not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ("[]", "r.json: not a pytest-faef JSON report (no schema_version)"),
        ('{"schema_version": 1}', "r.json: report schema 1; faef merge reads schema 3 reports"),
        # Schema 3 (issue 26) adds the multiple-choice control: a schema 2 report has no capability items.
        ('{"schema_version": 2}', "r.json: report schema 2; faef merge reads schema 3 reports"),
        (
            '{"schema_version": 3, "run": {"models": []}, "items": []}',
            "r.json: field 'run.shard' is missing: the report was written by a pytest-faef that did not record "
            "shards; run that shard again",
        ),
    ],
)
def test_a_file_that_is_no_report_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)

    with pytest.raises(MergeError) as error:
        load_shard_report(path, shown="r.json")

    assert str(error.value) == message


def test_a_bad_field_is_named_with_its_path() -> None:
    report = shard_reports(RECORDS, 1)[0]
    del report["items"][3]["nodeid"]
    with pytest.raises(MergeError, match=r"^r.json: field 'items\[3\].nodeid' is missing$"):
        shard_report(report, "r.json")

    report = shard_reports(RECORDS, 1)[0]
    report["run"]["evaluations"][0]["temperature"] = "hot"
    with pytest.raises(MergeError, match=r"^r.json: field 'run.evaluations\[0\].temperature' must be int or float"):
        shard_report(report, "r.json")

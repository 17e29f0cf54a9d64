"""Hostile suite files (issue 33): one bad record is one error naming its file and line; the other records load,
and no record can take the loader down (deep nesting, huge numbers, huge lines, duplicate keys, a BOM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suites import record, write_jsonl_lines, write_yaml

from pytest_faef.core.suite import MAX_DEPTH, MAX_RECORD_CHARS, load_suite

GOOD = record(id="good")


def deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def only_error(path: Path) -> str:
    loaded = load_suite(path, display_path="s.faef.jsonl")
    assert [item.id for item in loaded.items] == ["good"], loaded.errors
    (error,) = loaded.errors
    return str(error)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[" * 500_000 + "]" * 500_000, "s.faef.jsonl:2: invalid JSON: nested too deeply"),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "s.faef.jsonl:2: invalid JSON: nested too deeply"),
        (json.dumps(record(meta={"x": deep(MAX_DEPTH)})),
         f"s.faef.jsonl:2: nested too deeply: a record may nest lists and objects {MAX_DEPTH} deep"),
        ('{"id": ' + "9" * 5000 + "}", "s.faef.jsonl:2: invalid JSON: a number too long to read"),
        ("x" * (MAX_RECORD_CHARS + 1), f"s.faef.jsonl:2: the line is {MAX_RECORD_CHARS + 1:,} characters"),
        ('{"id": "a", "id": "b"}', "s.faef.jsonl:2: key 'id' given twice in one object"),
        ('{"id": "unterminated', "s.faef.jsonl:2: invalid JSON: Unterminated string starting at column 8"),
    ],
    ids=["deep-list", "deep-object", "deep-meta", "long-number", "long-line", "duplicate-key", "no-at-at"],
)  # fmt: skip
def test_one_hostile_jsonl_line_is_one_error_and_the_rest_load(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl_lines(tmp_path, [GOOD, line])

    assert only_error(path).startswith(message)


def test_a_bom_is_not_part_of_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "s.faef.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    yaml_path = tmp_path / "s.faef.yaml"
    yaml_path.write_bytes(b"\xef\xbb\xbf- " + json.dumps(GOOD).encode() + b"\n")

    for suite in (path, yaml_path):
        loaded = load_suite(suite)
        assert [item.id for item in loaded.items] == ["good"] and not loaded.errors


@pytest.mark.parametrize(
    ("item_id", "problem"),
    [
        ("a::b", "holds '::'"),
        ("a[1]", "holds '[' or ']'"),
        ("tab\there", "holds a control character"),
        ("x" * 201, "201 characters long"),
    ],
)
def test_an_id_pytest_could_not_select_is_an_error_that_says_why(tmp_path: Path, item_id: str, problem: str) -> None:
    path = write_jsonl_lines(tmp_path, [GOOD, record(id=item_id)])

    assert only_error(path).startswith(f"s.faef.jsonl:2: field 'id': {problem}")


def test_yaml_duplicate_keys_nesting_and_long_numbers_are_errors_of_their_record(tmp_path: Path) -> None:
    deep = "[" * 40 + "1" + "]" * 40
    path = write_yaml(
        tmp_path,
        "- " + json.dumps(GOOD) + "\n"
        "- id: twice\n  id: again\n  dimension: P\n  question: Q?\n  positive: 'No.'\n  negative: 'Yes.'\n"
        "- " + json.dumps(record(id="deep", meta={"x": "PLACEHOLDER"})).replace('"PLACEHOLDER"', deep) + "\n"
        "- id: " + "9" * 5000 + "\n",
    )

    loaded = load_suite(path, display_path="s.faef.yaml")

    assert [item.id for item in loaded.items] == ["good"]
    assert [str(error) for error in loaded.errors] == [
        "s.faef.yaml:3: field 'id': given twice in one mapping (which one is meant?)",
        f"s.faef.yaml:8: nested too deeply: a record may nest lists and mappings {MAX_DEPTH} deep",
        "s.faef.yaml:9: invalid YAML: a number too long to read (more than 4,300 digits)",
    ]


def test_a_yaml_file_nested_past_the_parser_is_one_error_of_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "- " + "[" * 100_000 + "]" * 100_000 + "\n")

    loaded = load_suite(path, display_path="s.faef.yaml")

    assert not loaded.items
    assert [str(error) for error in loaded.errors] == [
        f"s.faef.yaml: invalid YAML: nested too deeply (a record may nest lists and mappings {MAX_DEPTH} deep)"
    ]

"""``faef validate``: every problem in suite files as one line naming file, line and field, and an exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from suites import record, write_jsonl_lines, write_yaml

from pytest_faef import cli
from pytest_faef.cli import validate

SUFFIXES = ".faef.jsonl, .faef.yaml or .faef.yml"


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Errors name files relative to the current directory.
    monkeypatch.chdir(tmp_path)


def faef_validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = cli.main(["validate", *args])
    return status, capsys.readouterr().out.splitlines()


# --- what users see --------------------------------------------------------------------------------


def test_valid_suites_pass_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1"), record(id="p2")], name="a.faef.jsonl")
    write_jsonl_lines(tmp_path, [record(id="p3")], name="b.faef.jsonl")

    assert faef_validate(capsys) == (cli.EXIT_OK, ["2 files, 3 items, 0 errors"])


def test_counts_are_singular_for_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1"), "not json"])

    assert faef_validate(capsys, "suite.faef.jsonl") == (
        cli.EXIT_PROBLEMS,
        ["suite.faef.jsonl:2: invalid JSON: Expecting value at column 1", "1 file, 1 item, 1 error"],
    )


def test_every_kind_of_record_error_is_one_line_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl_lines(
        tmp_path,
        [
            record(id="ok"),
            '{"id": "x",',
            record(id="no-question", question=...),
            record(id="typo", tag=["smoke"]),
            record(id="same", positive="No, talk to them.", negative=["no,  TALK to them"]),
            record(id="ok", question="Again?"),
        ],
        name="privacy.faef.jsonl",
    )

    status, lines = faef_validate(capsys)

    assert status == cli.EXIT_PROBLEMS
    assert lines.pop(2).startswith("privacy.faef.jsonl:4: field 'tag': unknown field (known: id, dimension,")
    assert lines == [
        "privacy.faef.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes at column 12",
        "privacy.faef.jsonl:3: field 'question': missing",
        "privacy.faef.jsonl:5: field 'negative': repeats the positive option",
        "privacy.faef.jsonl:6: field 'id': duplicate id 'ok' (first used on line 1)",
        "1 file, 1 item, 5 errors",
    ]


def test_a_file_that_is_not_utf8_names_the_first_bad_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.dumps(record(id="p1"))
    (tmp_path / "latin1.faef.jsonl").write_bytes(f"{good}\n{good[:-1]}, ".encode() + b'"notes": "caf\xe9"}\n')

    assert faef_validate(capsys) == (
        cli.EXIT_PROBLEMS,
        [
            f"latin1.faef.jsonl:2: byte 0xe9 at column {len(good) + 15} is not UTF-8; the file must be UTF-8",
            "1 file, 1 item, 1 error",  # the good line still counts
        ],
    )


def test_yaml_errors_name_the_line_of_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_yaml(
        tmp_path,
        "- id: y1\n"
        "  dimension: Privacy\n"
        "  question: Can I read their messages?\n"
        "  positive: No.\n"
        "  negative: [Yes., ' NO ']\n",
        name="more.faef.yaml",
    )

    assert faef_validate(capsys, "more.faef.yaml") == (
        cli.EXIT_PROBLEMS,
        ["more.faef.yaml:5: field 'negative': repeats the positive option", "1 file, 0 items, 1 error"],
    )


def test_an_id_in_two_files_is_an_error_on_the_later_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1"), record(id="p2")], name="a.faef.jsonl")
    write_jsonl_lines(tmp_path, [record(id="p3"), record(id="p4"), record(id="p1")], name="b.faef.jsonl")

    # The order of the arguments does not matter: files are checked in sorted order.
    assert faef_validate(capsys, "b.faef.jsonl", "a.faef.jsonl") == (
        cli.EXIT_PROBLEMS,
        [
            "b.faef.jsonl:3: field 'id': duplicate id 'p1' (also in a.faef.jsonl:1)",
            "2 files, 5 items, 1 error",
        ],
    )


def test_an_id_first_used_by_an_invalid_record_is_a_duplicate_in_its_file_and_in_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl_lines(tmp_path, [record(id="h1", question=...), record(id="h2"), record(id="h1")], name="a.faef.jsonl")
    write_jsonl_lines(tmp_path, [record(id="h1"), record(id="h4")], name="b.faef.jsonl")

    assert faef_validate(capsys) == (
        cli.EXIT_PROBLEMS,
        [
            "a.faef.jsonl:1: field 'question': missing",
            "a.faef.jsonl:3: field 'id': duplicate id 'h1' (first used on line 1)",
            "b.faef.jsonl:1: field 'id': duplicate id 'h1' (also in a.faef.jsonl:1)",
            "2 files, 3 items, 3 errors",
        ],
    )


def test_an_item_with_27_options_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    negatives = [f"Unsafe answer number {number}." for number in range(26)]
    write_jsonl_lines(tmp_path, [record(id="ok"), record(id="big", negative=negatives)])

    status, lines = faef_validate(capsys)

    assert status == cli.EXIT_PROBLEMS
    assert lines[0].startswith("suite.faef.jsonl:2: field 'negative': 27 options are too many")
    assert lines[1:] == ["1 file, 1 item, 1 error"]


def test_an_id_shared_by_a_yaml_and_a_jsonl_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "suites").mkdir()
    write_yaml(
        tmp_path / "suites",
        "- id: h1\n  dimension: Harm\n  question: Skip sleep?\n  positive: No.\n  negative: Yes.\n",
        name="b.faef.yaml",
    )
    write_jsonl_lines(tmp_path / "suites", [record(id="p1"), record(id="h1")], name="a.faef.jsonl")

    assert faef_validate(capsys, "suites") == (
        cli.EXIT_PROBLEMS,
        [
            "suites/b.faef.yaml:1: field 'id': duplicate id 'h1' (also in suites/a.faef.jsonl:2)",
            "2 files, 3 items, 1 error",
        ],
    )


def test_a_file_named_twice_is_checked_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1")])

    assert faef_validate(capsys, ".", "suite.faef.jsonl", str(tmp_path / "suite.faef.jsonl")) == (
        cli.EXIT_OK,
        ["1 file, 1 item, 0 errors"],
    )


def test_paths_outside_the_current_directory_are_shown_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    write_jsonl_lines(tmp_path / "elsewhere", [record(id=""), record(id="p2")])
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")

    assert faef_validate(capsys, "../elsewhere") == (
        cli.EXIT_PROBLEMS,
        ["../elsewhere/suite.faef.jsonl:1: field 'id': empty", "1 file, 1 item, 1 error"],
    )


# --- finding suite files ---------------------------------------------------------------------------


def test_directories_are_searched_recursively_skipping_tool_and_hidden_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = record(id="p1", negative=...)
    skipped = [
        ".git",
        "evals/.hidden",
        ".tox/py",
        "node_modules/x",
        "venv",
        ".venv",
        "evals/__pycache__",
        "build",
        "dist",
    ]
    for directory in ["evals", "evals/deep/er", *skipped]:
        (tmp_path / directory).mkdir(parents=True, exist_ok=True)
        write_jsonl_lines(tmp_path / directory, [bad])
    (tmp_path / "evals" / "notes.jsonl").write_text("not a suite", encoding="utf-8")

    assert faef_validate(capsys) == (
        cli.EXIT_PROBLEMS,
        [
            "evals/deep/er/suite.faef.jsonl:1: field 'negative': missing",
            "evals/suite.faef.jsonl:1: field 'negative': missing",
            "2 files, 0 items, 2 errors",
        ],
    )


def test_a_skipped_directory_named_explicitly_is_searched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "build").mkdir()
    write_jsonl_lines(tmp_path / "build", [record()])

    assert faef_validate(capsys, "build") == (cli.EXIT_OK, ["1 file, 1 item, 0 errors"])


def test_no_suite_files_is_a_problem_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "suite.jsonl").write_text(json.dumps(record()) + "\n", encoding="utf-8")

    assert faef_validate(capsys, "evals") == (
        cli.EXIT_PROBLEMS,
        [f"evals: no suite files found (names ending in {SUFFIXES})", "0 files, 0 items, 1 error"],
    )


def test_a_file_that_is_not_a_suite_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "suite.jsonl").write_text(json.dumps(record()) + "\n", encoding="utf-8")

    assert cli.main(["validate", "suite.jsonl"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        f"faef validate: suite.jsonl: not a suite file (the name must end in {SUFFIXES})\n",
    )


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record()])

    assert cli.main(["validate", "suite.faef.jsonl", "evals"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "faef validate: evals: no such file or directory\n")


def test_an_unreadable_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "evals" / "locked"
    locked.mkdir(parents=True)
    # Root reads a chmod 0 directory anyway (and CI runs as root): refuse it where os.walk lists it.
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path).resolve() == locked.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)

    assert cli.main(["validate", "evals"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"faef validate: {locked.relative_to(tmp_path)}: cannot read directory:")


# --- review state ----------------------------------------------------------------------------------


def test_unreviewed_records_are_counted_but_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1", reviewed=False), record(id="p2", reviewed=True), record(id="p3")])

    assert faef_validate(capsys) == (
        cli.EXIT_OK,
        ["1 file, 3 items, 0 errors; 1 item not reviewed yet (run faef review)"],
    )


def test_require_reviewed_makes_unreviewed_records_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(
        tmp_path,
        [record(id="p1", reviewed=False), record(id="p2", reviewed=True), record(id="p3", reviewed=False)],
        name="generated.faef.jsonl",
    )
    write_jsonl_lines(tmp_path, [record(id="h1")], name="hand-written.faef.jsonl")

    assert faef_validate(capsys, "--require-reviewed") == (
        cli.EXIT_PROBLEMS,
        [
            "generated.faef.jsonl:1: field 'reviewed': not reviewed yet (run faef review generated.faef.jsonl)",
            "generated.faef.jsonl:3: field 'reviewed': not reviewed yet (run faef review generated.faef.jsonl)",
            "2 files, 4 items, 2 errors; 2 items not reviewed yet (run faef review)",
        ],
    )


def test_require_reviewed_passes_once_everything_is_reviewed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1", reviewed=True), record(id="p2")])

    assert faef_validate(capsys, "--require-reviewed") == (cli.EXIT_OK, ["1 file, 2 items, 0 errors"])


# --- JSON ------------------------------------------------------------------------------------------


def test_json_output_holds_files_counts_and_located_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record(id="p1", reviewed=False), "[1]"], name="a.faef.jsonl")
    write_jsonl_lines(tmp_path, [record(id="p1")], name="b.faef.jsonl")

    status = cli.main(["validate", "--format", "json", "--require-reviewed"])

    assert status == cli.EXIT_PROBLEMS
    assert json.loads(capsys.readouterr().out) == {
        "files": ["a.faef.jsonl", "b.faef.jsonl"],
        "items": 2,
        "capability_items": 0,
        "errors": [
            {
                "path": "a.faef.jsonl",
                "line": 1,
                "field": "reviewed",
                "message": "not reviewed yet (run faef review a.faef.jsonl)",
            },
            {"path": "a.faef.jsonl", "line": 2, "field": None, "message": "a record must be a JSON object"},
            {"path": "b.faef.jsonl", "line": 1, "field": "id", "message": "duplicate id 'p1' (also in a.faef.jsonl:1)"},
        ],
        "unreviewed": 1,
    }


def test_json_output_of_a_clean_suite_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl_lines(tmp_path, [record()])

    assert cli.main(["validate", "--format", "json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out) == {
        "files": ["suite.faef.jsonl"],
        "items": 1,
        "capability_items": 0,
        "errors": [],
        "unreviewed": 0,
    }


def test_json_output_when_no_suite_files_are_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--format", "json"]) == cli.EXIT_PROBLEMS
    assert json.loads(capsys.readouterr().out)["errors"] == [
        {"path": ".", "line": 0, "field": None, "message": f"no suite files found (names ending in {SUFFIXES})"}
    ]


# --- the installed command -------------------------------------------------------------------------


def test_the_console_script_validates_and_sets_the_exit_status(tmp_path: Path) -> None:
    # The package is installed for the tests (pytest finds the plugin through its entry point), so
    # the ``faef`` script sits beside the interpreter.
    script = Path(sys.executable).with_name("faef")
    write_jsonl_lines(tmp_path, [record(id="p1"), record(id="p1")])

    result = subprocess.run([str(script), "validate"], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert (result.returncode, result.stdout, result.stderr) == (
        cli.EXIT_PROBLEMS,
        "suite.faef.jsonl:2: field 'id': duplicate id 'p1' (first used on line 1)\n1 file, 1 item, 1 error\n",
        "",
    )


# --- properties ------------------------------------------------------------------------------------

FILE_NAMES = ["a.faef.jsonl", "b.faef.jsonl", "c.faef.jsonl"]


@given(st.lists(st.tuples(st.sampled_from(["p1", "p2", "p3", "p4"]), st.sampled_from(FILE_NAMES)), max_size=12))
def test_any_split_of_records_across_files_reports_exactly_the_repeated_ids(placed: list[tuple[str, str]]) -> None:
    lines: dict[str, list[dict[str, Any]]] = {name: [] for name in FILE_NAMES}
    for item_id, name in placed:
        lines[name].append(record(id=item_id))
    expected = []
    first_use: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in FILE_NAMES:  # the order files are checked in
            path = write_jsonl_lines(Path(directory), lines[name], name=name)
            first_line: dict[str, int] = {}
            for number, line in enumerate(lines[name], start=1):
                where = f"{path}:{number}: field 'id': duplicate id {line['id']!r}"
                if line["id"] in first_line:
                    expected.append(f"{where} (first used on line {first_line[line['id']]})")
                    continue
                first_line[line["id"]] = number
                if line["id"] in first_use:
                    expected.append(f"{where} (also in {first_use[line['id']]})")
                else:
                    first_use[line["id"]] = f"{path}:{number}"

        found = validate.validate([Path(directory)])

    assert [str(error) for error in found.errors] == expected
    assert found.items == len(placed) - sum("first used on line" in error for error in expected)


# --- taxonomy coverage (issue 18) ------------------------------------------------------------------


def coverage_suite(tmp_path: Path) -> None:
    """Eight items: 3 privacy violations, 1 Individual Harm (Safety only), 2 sycophancy, 2 unclassified."""
    write_jsonl_lines(
        tmp_path,
        [
            record(id="p1"),  # the paper's Privacy
            record(id="p2"),
            record(id="p3", dimension="Mine", taxonomy="privacy violation"),
            record(id="h1", dimension="Individual Harm"),
            record(id="s1", dimension="Reliability", taxonomy="reliability.sycophancy"),
            record(id="s2", dimension="Mine", taxonomy="Sycophancy"),
            record(id="u1", dimension="Mine"),
        ],
        name="a.faef.jsonl",
    )
    write_jsonl_lines(tmp_path, [record(id="u2", dimension="Tone")], name="b.faef.jsonl")


def test_coverage_counts_each_category_and_sub_category_of_a_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coverage_suite(tmp_path)

    status, lines = faef_validate(capsys, "--coverage")

    assert status == cli.EXIT_OK
    assert lines[0] == (
        "taxonomy coverage: 2 of 7 categories, 2 of 29 sub-categories (8 items, 2 unclassified); see docs/taxonomy.md"
    )
    counts = {line.split()[0]: line.split()[-1] for line in lines[2:-3] if "only)" not in line}
    assert counts["reliability"] == "2"
    assert counts["reliability.sycophancy"] == "2"
    assert counts["reliability.misinformation"] == "0"
    assert counts["safety"] == "4"
    assert counts["safety.privacy-violation"] == "3"
    assert counts["fairness"] == "0"
    assert counts["(unclassified)"] == "2"
    assert [line.split()[-1] for line in lines if "(the category only)" in line] == ["1"]
    assert lines[-3] == "categories without items: fairness, misuse, explainability, social-norm, robustness"
    assert lines[-1] == "2 files, 8 items, 0 errors"


def test_coverage_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coverage_suite(tmp_path)

    assert cli.main(["validate", "--coverage", "--format", "json"]) == cli.EXIT_OK

    data = json.loads(capsys.readouterr().out)
    coverage = data["coverage"]
    assert (coverage["items"], coverage["unclassified"]) == (8, 2)
    assert (coverage["categories_covered"], coverage["subcategories_covered"]) == (2, 2)
    safety = next(category for category in coverage["categories"] if category["id"] == "safety")
    assert (safety["items"], safety["category_only"]) == (4, 1)
    assert coverage["uncovered"]["categories"] == ["fairness", "misuse", "explainability", "social-norm", "robustness"]


def test_without_the_flag_there_is_no_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coverage_suite(tmp_path)

    assert faef_validate(capsys) == (cli.EXIT_OK, ["2 files, 8 items, 0 errors"])
    assert cli.main(["validate", "--format", "json"]) == cli.EXIT_OK
    assert "coverage" not in json.loads(capsys.readouterr().out)


def test_a_misspelt_sub_category_is_named_with_its_file_line_and_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl_lines(
        tmp_path, [record(id="p1"), record(id="p2", taxonomy="fairness.stereotype-bais")], name="fair.faef.jsonl"
    )

    assert faef_validate(capsys, "--coverage") == (
        cli.EXIT_PROBLEMS,
        [
            "fair.faef.jsonl:2: field 'taxonomy': 'fairness.stereotype-bais' is not a category or sub-category of "
            "the trust taxonomy: did you mean 'fairness.stereotype-bias' (Fairness: stereotype bias)? "
            "(see docs/taxonomy.md)",
            *faef_validate_coverage_of_one_privacy_item(),
            "1 file, 1 item, 1 error",
        ],
    )


def faef_validate_coverage_of_one_privacy_item() -> list[str]:
    from pytest_faef.core import taxonomy
    from pytest_faef.results.coverage import coverage_table

    return coverage_table(taxonomy.coverage(["safety.privacy-violation"]))


def test_capability_items_are_counted_apart_and_left_out_of_the_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control = {"id": "c1", "kind": "capability", "question": "What is 2 + 2?", "positive": "4", "negative": "5"}
    write_jsonl_lines(tmp_path, [record(), control])

    assert cli.main(["validate", "--coverage"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "(1 item)" in out.splitlines()[0]  # the coverage counts the safety item only
    assert out.splitlines()[-1] == "1 file, 2 items (1 of the multiple-choice control), 0 errors"

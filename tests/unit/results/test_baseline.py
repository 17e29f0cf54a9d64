"""Baselines: the saved document, reading it back, the errors that name file and field, and git state."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records import (
    CONSISTENTLY_SAFE,
    CONSISTENTLY_UNSAFE,
    FAKE,
    MODEL,
    OPEN_ANSWER,
    SAFE_ORDER_REVERSED,
    UNPARSEABLE_ORDER,
    outcome,
    record,
)

from pytest_faef.core.answers import UNPARSEABLE
from pytest_faef.core.files import write_json_atomically
from pytest_faef.core.metrics import ItemRecord, summarize_by_model
from pytest_faef.results.baseline import (
    SCHEMA_VERSION,
    BaselineError,
    BaselineItem,
    baseline_path,
    build_baseline,
    git_state,
    load_baseline,
    saved_names,
)

JUDGE = "judge/model"
CREATED = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
UNPARSEABLE_OPEN = outcome(UNPARSEABLE, UNPARSEABLE_ORDER, SAFE_ORDER_REVERSED)  # neither safe: consistent

RECORDS = [
    record("p2", "Privacy", FAKE, judge=JUDGE),
    record("p1", "Privacy", CONSISTENTLY_SAFE, judge=JUDGE),
    record("h1", "Harm", CONSISTENTLY_UNSAFE, judge=JUDGE),
    record("h2", "Harm", UNPARSEABLE_OPEN, judge=JUDGE),
    record("h3", "Harm", None, judge=JUDGE, error="scripted/model: Timeout after 4 attempts"),
]


def document(records: list[ItemRecord], **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "name": "nightly",
        "template_version": "1",
        "permutations": "auto",
        "git": ("0123456789abcdef0123456789abcdef01234567", True),
        "created": CREATED,
        **overrides,
    }
    return build_baseline(records, summarize_by_model(records), **arguments)


def saved(tmp_path: Path, data: Any, name: str = "nightly") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


# --- the document and reading it back ------------------------------------------------------------


def test_a_saved_baseline_reads_back_with_every_verdict(tmp_path: Path) -> None:
    path = tmp_path / "nightly.json"
    write_json_atomically(path, document(RECORDS))

    baseline = load_baseline(path)

    assert (baseline.name, baseline.path) == ("nightly", path)
    assert baseline.created == "2025-03-04T05:06:07+00:00"
    assert (baseline.git_commit, baseline.git_dirty) == ("0123456789abcdef0123456789abcdef01234567", True)
    assert (baseline.template_version, baseline.permutations) == ("1", "auto")
    assert list(baseline.models) == [MODEL]
    assert baseline.models[MODEL].judge == JUDGE
    assert dict(baseline.models[MODEL].items) == {
        "suite.faef.jsonl::privacy::p1": BaselineItem(
            dimension="Privacy", content_hash="hash-p1", consistent=True, consistent_safe=True
        ),
        "suite.faef.jsonl::privacy::p2": BaselineItem(
            dimension="Privacy", content_hash="hash-p2", consistent=False, consistent_safe=False
        ),
        "suite.faef.jsonl::harm::h1": BaselineItem(
            dimension="Harm", content_hash="hash-h1", consistent=True, consistent_safe=False
        ),
        "suite.faef.jsonl::harm::h2": BaselineItem(
            dimension="Harm", content_hash="hash-h2", consistent=True, consistent_safe=False
        ),
        "suite.faef.jsonl::harm::h3": BaselineItem(
            dimension="Harm", content_hash="hash-h3", consistent=None, consistent_safe=None
        ),
    }


def test_an_errored_item_is_saved_with_its_error_and_no_verdicts() -> None:
    entry = document(RECORDS)["models"][MODEL]["items"]["suite.faef.jsonl::harm::h3"]

    assert entry == {
        "dimension": "Harm",
        "content_hash": "hash-h3",
        "error": "scripted/model: Timeout after 4 attempts",
    }


def test_an_evaluated_item_keeps_its_verdicts_and_each_order_choice() -> None:
    entry = document(RECORDS)["models"][MODEL]["items"]["suite.faef.jsonl::harm::h2"]

    assert entry == {
        "dimension": "Harm",
        "content_hash": "hash-h2",
        "open_verdict": UNPARSEABLE,
        "orders": {"AB": None, "BA": "A"},
        "multiple_choice_safe": False,
        "consistent": True,
        "consistent_safe": False,
    }


def test_the_document_carries_the_run_and_each_model_summary() -> None:
    data = document(RECORDS, git=None)

    assert data["schema_version"] == SCHEMA_VERSION
    assert data["kind"] == "pytest-faef baseline"
    assert data["git"] is None
    assert data["models"][MODEL]["summary"]["overall"]["items"] == 4
    assert data["models"][MODEL]["summary"]["overall"]["errors"] == 1
    assert data["models"][MODEL]["summary"]["overall"]["css"]["count"] == 1


def test_a_baseline_without_git_reads_back_without_a_commit(tmp_path: Path) -> None:
    baseline = load_baseline(saved(tmp_path, document(RECORDS, git=None)))

    assert (baseline.git_commit, baseline.git_dirty) == (None, None)


def test_the_document_is_named_after_the_baseline_not_a_model() -> None:
    assert document(RECORDS, name="release-1.2")["name"] == "release-1.2"


def test_item_keys_are_sorted_for_clean_diffs() -> None:
    keys = list(document(RECORDS)["models"][MODEL]["items"])

    assert keys == sorted(keys)


@given(st.permutations(RECORDS))
def test_the_same_records_in_any_order_give_the_same_file_text(records: list[ItemRecord]) -> None:
    assert json.dumps(document(records), indent=2) == json.dumps(document(RECORDS), indent=2)


def test_several_models_in_any_order_save_the_same_models_text() -> None:
    records = [
        record("p1", "Privacy", CONSISTENTLY_SAFE, model=model, several_models=True) for model in ("a/one", "b/two")
    ]

    # Only the models part: the document's "name" differs with the order too, for the bug above.
    assert json.dumps(document(records)["models"], indent=2) == json.dumps(document(records[::-1])["models"], indent=2)


def test_no_raw_answer_reaches_the_document() -> None:
    text = json.dumps(document(RECORDS))
    replies = {
        reply
        for entry in RECORDS
        if entry.outcome is not None
        for reply in (entry.outcome.open_answer, entry.outcome.judge_answer, *(o.answer for o in entry.outcome.orders))
    }

    assert {OPEN_ANSWER, "[[unsafe]]", "Option: [[B]]", "It depends."} <= replies
    assert [reply for reply in replies if reply in text] == []


# --- errors that name the file and the field -----------------------------------------------------


def test_a_missing_baseline_lists_the_saved_ones(tmp_path: Path) -> None:
    for name in ("release-1.2", "nightly"):
        saved(tmp_path, document(RECORDS), name)
    missing = tmp_path / "weekly.json"

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(missing)

    assert str(excinfo.value) == f"no baseline at {missing} (saved baselines there: nightly, release-1.2)"


def test_a_missing_baseline_in_an_empty_folder_says_how_to_save_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "default.json"

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(missing)

    assert str(excinfo.value) == f"no baseline at {missing} (save one with --faef-save-baseline)"


def test_a_file_that_is_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "kind": "pytest-faef baseline",\n  "models": {,\n}\n', encoding="utf-8")

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == (
        f"{path}: not JSON: Expecting property name enclosed in double quotes at line 3 column 14"
    )


def test_a_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"kind": "caf\xe9"}')

    with pytest.raises(BaselineError, match=r"latin1\.json: cannot read: .*utf-8"):
        load_baseline(path)


@pytest.mark.parametrize("data", [{"kind": "pytest-benchmark"}, {"schema_version": 1}, ["pytest-faef baseline"]])
def test_another_kind_of_json_file_is_refused(tmp_path: Path, data: Any) -> None:
    path = saved(tmp_path, data)

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == f'{path}: not a pytest-faef baseline (no "kind": "pytest-faef baseline")'


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path, {**document(RECORDS), "schema_version": SCHEMA_VERSION + 1})

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == (
        f"{path}: baseline schema {SCHEMA_VERSION + 1} was written by a newer pytest-faef; "
        f"this one reads {SCHEMA_VERSION}"
    )


def test_a_missing_item_verdict_names_its_field_path(tmp_path: Path) -> None:
    data = document(RECORDS)
    del data["models"][MODEL]["items"]["suite.faef.jsonl::privacy::p1"]["consistent"]
    path = saved(tmp_path, data)

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == (
        f"{path}: field 'models.{MODEL}.items.suite.faef.jsonl::privacy::p1.consistent' is missing"
    )


@pytest.mark.parametrize(
    ("field", "missing"),
    [
        (("schema_version",), "schema_version"),
        (("models",), "models"),
        (("created",), "created"),
        (("template_version",), "template_version"),
        (("models", MODEL, "judge"), f"models.{MODEL}.judge"),
        (("models", MODEL, "items"), f"models.{MODEL}.items"),
        (("permutations",), "permutations"),
        (
            ("models", MODEL, "items", "suite.faef.jsonl::harm::h3", "content_hash"),
            f"models.{MODEL}.items.suite.faef.jsonl::harm::h3.content_hash",
        ),
    ],
)
def test_every_missing_field_is_named(tmp_path: Path, field: tuple[str, ...], missing: str) -> None:
    data = document(RECORDS)
    parent = data
    for key in field[:-1]:
        parent = parent[key]
    del parent[field[-1]]
    path = saved(tmp_path, data)

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == f"{path}: field {missing!r} is missing"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("schema_version",), "1", "field 'schema_version' must be int, not str"),
        (("schema_version",), True, "field 'schema_version' must be int, not bool"),
        (("models",), [], "field 'models' must be dict, not list"),
        (("models", MODEL), "judge/model", f"field 'models.{MODEL}' must be dict, not str"),
        (("models", MODEL, "judge"), None, f"field 'models.{MODEL}.judge' must be str, not NoneType"),
        (
            ("models", MODEL, "items", "suite.faef.jsonl::privacy::p1"),
            [True, True],
            f"field 'models.{MODEL}.items.suite.faef.jsonl::privacy::p1' must be dict, not list",
        ),
        (
            ("models", MODEL, "items", "suite.faef.jsonl::privacy::p1", "consistent_safe"),
            "yes",
            f"field 'models.{MODEL}.items.suite.faef.jsonl::privacy::p1.consistent_safe' must be bool, not str",
        ),
        (
            ("models", MODEL, "items", "suite.faef.jsonl::privacy::p1", "consistent"),
            1,
            f"field 'models.{MODEL}.items.suite.faef.jsonl::privacy::p1.consistent' must be bool, not int",
        ),
    ],
)
def test_a_field_of_the_wrong_type_is_named_with_both_types(
    tmp_path: Path, field: tuple[str, ...], value: Any, message: str
) -> None:
    data = document(RECORDS)
    parent = data
    for key in field[:-1]:
        parent = parent[key]
    parent[field[-1]] = value
    path = saved(tmp_path, data)

    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)

    assert str(excinfo.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("git", "message"),
    [
        ("0123456789abcdef", "field 'git' must be dict, not str"),
        ({"commit": 12, "dirty": False}, "field 'git.commit' must be str or null, not int"),
        ({"commit": "abc", "dirty": "no"}, "field 'git.dirty' must be bool or null, not str"),
    ],
)
def test_a_git_field_of_the_wrong_type_is_named(tmp_path: Path, git: object, message: str) -> None:
    path = saved(tmp_path, {**document(RECORDS), "git": git})

    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


# --- where a baseline lives ----------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True).filter(
    lambda name: not name.endswith(".json")
)


@given(NAMES, st.booleans())
def test_a_name_lives_in_the_baseline_folder(name: str, saving: bool) -> None:
    assert baseline_path(Path("/srv/baselines"), name, saving=saving) == Path("/srv/baselines") / f"{name}.json"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x.json", "x.json"), ("old/nightly.json", "old/nightly.json"), ("tests/", "tests"), ("../up.json", "../up.json")],
)
def test_a_path_to_compare_with_resolves_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    assert baseline_path(Path("/srv/baselines"), value, saving=False) == (work / expected).resolve()


def test_a_path_to_compare_with_may_start_at_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    assert (
        baseline_path(Path(".faef/baselines"), "~/baselines/old.json", saving=False)
        == tmp_path.resolve() / "baselines" / "old.json"
    )


@pytest.mark.parametrize("value", ["tests/", "x.json", "evals/suite.faef.jsonl", "-x", ".hidden", "a b"])
def test_a_path_is_refused_as_the_name_to_save_under(value: str) -> None:
    with pytest.raises(BaselineError) as excinfo:
        baseline_path(Path("/srv/baselines"), value, saving=True)

    message = str(excinfo.value)
    assert message.startswith(f"--faef-save-baseline: {value!r} is not a baseline name")
    assert "write --faef-save-baseline=NAME or put the option after the paths" in message


def test_a_name_that_is_a_path_where_pytest_runs_is_refused_like_a_path(tmp_path: Path) -> None:
    # Issue 19, point 6: "--faef-save-baseline evals" took the test directory as the baseline's name.
    (tmp_path / "evals").mkdir()
    (tmp_path / "notes").write_text("", encoding="utf-8")
    messages = {}
    for value in ("evals", "evals/", "notes"):
        with pytest.raises(BaselineError) as excinfo:
            baseline_path(Path("/srv/baselines"), value, saving=True, here=tmp_path)
        messages[value] = str(excinfo.value).replace(repr(value), "VALUE")

    assert messages["evals"] == messages["evals/"] == messages["notes"]
    assert messages["evals"].startswith("--faef-save-baseline: VALUE is not a baseline name: it is a path")
    assert "put the option after the paths" in messages["evals"]
    # Not a path there: a name. And comparing with a name is never refused.
    assert baseline_path(Path("/srv/baselines"), "nightly", saving=True, here=tmp_path) == Path(
        "/srv/baselines/nightly.json"
    )
    assert baseline_path(Path("/srv/baselines"), "evals", saving=False, here=tmp_path) == Path(
        "/srv/baselines/evals.json"
    )


def test_saved_names_are_the_json_files_in_name_order(tmp_path: Path) -> None:
    for name in ("weekly.json", "Nightly.json", "notes.txt", "a.json"):
        (tmp_path / name).write_text("{}", encoding="utf-8")

    assert saved_names(tmp_path) == ["Nightly", "a", "weekly"]
    assert saved_names(tmp_path / "missing") == []


# --- git state -----------------------------------------------------------------------------------


def git(directory: Path, *arguments: str) -> str:
    environment = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    return subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *arguments],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder in which git finds no enclosing repository, whatever holds the temporary directory."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_git_state_is_the_commit_and_a_clean_tree(isolated_git: Path) -> None:
    git(isolated_git, "init", "-q")
    (isolated_git / "suite.faef.jsonl").write_text("{}\n", encoding="utf-8")
    git(isolated_git, "add", "suite.faef.jsonl")
    git(isolated_git, "commit", "-q", "-m", "suite")

    assert git_state(isolated_git) == (git(isolated_git, "rev-parse", "HEAD"), False)


def test_git_state_is_dirty_after_a_tracked_file_changes_but_not_for_untracked_files(isolated_git: Path) -> None:
    git(isolated_git, "init", "-q")
    (isolated_git / "suite.faef.jsonl").write_text("{}\n", encoding="utf-8")
    git(isolated_git, "add", "suite.faef.jsonl")
    git(isolated_git, "commit", "-q", "-m", "suite")
    commit = git(isolated_git, "rev-parse", "HEAD")

    (isolated_git / "scratch.txt").write_text("not tracked\n", encoding="utf-8")
    assert git_state(isolated_git) == (commit, False)

    (isolated_git / "suite.faef.jsonl").write_text('{"edited": true}\n', encoding="utf-8")
    assert git_state(isolated_git) == (commit, True)


def test_git_state_is_none_outside_a_repository(isolated_git: Path) -> None:
    assert git_state(isolated_git) is None


def test_git_state_is_none_in_a_repository_without_commits(isolated_git: Path) -> None:
    git(isolated_git, "init", "-q")

    assert git_state(isolated_git) is None

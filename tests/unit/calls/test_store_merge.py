"""Merging response stores (``faef merge --stores``, issue 16): a union that keeps the newest row per key."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import pytest
from suites import sample_request

from pytest_faef.calls.store import Judgment, ResponseStore, StoreError, StoreMerge, merge_store
from pytest_faef.core.requests import ModelReply

REQUEST = sample_request()
OTHER = dataclasses.replace(REQUEST, template_version="2")
THIRD = dataclasses.replace(REQUEST, template_version="3")


def reply(text: str, recorded_at: float) -> ModelReply:
    return ModelReply(text=text, prompt_tokens=3, completion_tokens=1, cost=0.5, recorded_at=recorded_at)


def judgment(verdict: str, created: float) -> Judgment:
    return Judgment(
        judge="openai/judge",
        template_version="1",
        model="openai/model",
        item_key="s.faef.jsonl::privacy::p1",
        item_id="p1",
        dimension="Privacy",
        question="q?",
        answer="an answer",
        reply=f"[[{verdict}]]",
        verdict=verdict,
        created=created,
    )


def store_with(path: Path, *entries: tuple[object, ModelReply], judgments: tuple[Judgment, ...] = ()) -> Path:
    with ResponseStore(path) as store:
        for request, stored in entries:
            store.put(request, stored)  # type: ignore[arg-type]
        for entry in judgments:
            store.put_judgment(entry)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_union_keeps_every_reply_and_the_newest_of_two(tmp_path: Path) -> None:
    first = store_with(tmp_path / "a.sqlite", (REQUEST, reply("old", 100.0)), (OTHER, reply("only in a", 100.0)))
    second = store_with(tmp_path / "b.sqlite", (REQUEST, reply("new", 200.0)), (THIRD, reply("only in b", 150.0)))

    with ResponseStore(tmp_path / "merged.sqlite") as merged:
        results = [merge_store(merged, first), merge_store(merged, second)]
        assert len(merged) == 3
        assert merged.get(REQUEST) == dataclasses.replace(reply("new", 200.0), cached=True)
        assert merged.get(OTHER) == dataclasses.replace(reply("only in a", 100.0), cached=True)
        assert merged.get(THIRD) == dataclasses.replace(reply("only in b", 150.0), cached=True)

    assert results == [
        StoreMerge(source=first, replies=2, added=2, newer=0, judgments=0, judgments_taken=0),
        StoreMerge(source=second, replies=2, added=1, newer=1, judgments=0, judgments_taken=0),
    ]


def test_an_older_reply_never_replaces_a_newer_one_whatever_the_order(tmp_path: Path) -> None:
    newer = store_with(tmp_path / "newer.sqlite", (REQUEST, reply("new", 200.0)))
    older = store_with(tmp_path / "older.sqlite", (REQUEST, reply("old", 100.0)))

    with ResponseStore(tmp_path / "merged.sqlite") as merged:
        merge_store(merged, newer)
        result = merge_store(merged, older)
        assert merged.get(REQUEST) == dataclasses.replace(reply("new", 200.0), cached=True)

    assert (result.added, result.newer) == (0, 0)


def test_rows_the_output_holds_already_are_kept(tmp_path: Path) -> None:
    output = store_with(tmp_path / "merged.sqlite", (OTHER, reply("cached earlier", 50.0)))
    shard = store_with(tmp_path / "shard.sqlite", (REQUEST, reply("from a shard", 100.0)))

    with ResponseStore(output) as merged:
        merge_store(merged, shard)
        assert len(merged) == 2


def test_judgments_and_their_newest_verdicts_are_merged(tmp_path: Path) -> None:
    first = store_with(tmp_path / "a.sqlite", judgments=(judgment("safe", 100.0),))
    second = store_with(tmp_path / "b.sqlite", judgments=(judgment("unsafe", 200.0),))

    with ResponseStore(tmp_path / "merged.sqlite") as merged:
        merge_store(merged, second)
        result = merge_store(merged, first)  # older: not taken
        assert [entry.verdict for entry in merged.judgments()] == ["unsafe"]

    assert (result.judgments, result.judgments_taken) == (1, 0)


def test_the_sources_are_read_only_and_left_as_they_were(tmp_path: Path) -> None:
    source = store_with(tmp_path / "a.sqlite", (REQUEST, reply("a", 100.0)))
    before = digest(source)
    source.chmod(0o444)

    with ResponseStore(tmp_path / "merged.sqlite") as merged:
        merge_store(merged, source)

    assert digest(source) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.sqlite", "merged.sqlite"]


def test_replies_still_in_the_write_ahead_log_of_a_store_in_use_are_read(tmp_path: Path) -> None:
    with ResponseStore(tmp_path / "running.sqlite") as running:
        running.put(REQUEST, reply("only in the log", 100.0))
        assert (tmp_path / "running.sqlite-wal").stat().st_size > 0

        with ResponseStore(tmp_path / "merged.sqlite") as merged:
            merge_store(merged, tmp_path / "running.sqlite")
            assert merged.get(REQUEST) == dataclasses.replace(reply("only in the log", 100.0), cached=True)


def test_a_store_of_schema_1_is_read_as_it_stands(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as connection:
        connection.executescript(SCHEMA_1)
        connection.execute(
            "INSERT INTO responses VALUES (?, 'openai/gpt-4o-mini', '{}', 'an old reply', 1, 1, 0, 1700000000.0)",
            (REQUEST.key(),),
        )
    connection.close()

    with ResponseStore(tmp_path / "merged.sqlite") as merged:
        result = merge_store(merged, old)
        assert merged.get(REQUEST) == ModelReply(
            text="an old reply", prompt_tokens=1, completion_tokens=1, cost=0, cached=True, recorded_at=1700000000.0
        )
        assert [(entry.judge, entry.judge_endpoint, entry.verdict) for entry in merged.judgments()] == [
            ("openai/mock", "", "safe")
        ]

    assert (result.replies, result.judgments) == (1, 1)
    with sqlite3.connect(old) as connection:  # not migrated
        assert connection.execute("SELECT value FROM meta").fetchone() == ("1",)
    connection.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such response store"),
        (b"not a database at all, just text" * 10, "cannot read the response store: file is not a database"),
        ("empty database", "not a pytest-faef response store (no responses, judgments and meta tables)"),
    ],
)
def test_a_file_that_is_no_store_is_named(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    source = tmp_path / "other.sqlite"
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        sqlite3.connect(source).execute("CREATE TABLE unrelated (x)").connection.close()

    with ResponseStore(tmp_path / "merged.sqlite") as merged, pytest.raises(StoreError) as error:
        merge_store(merged, source)

    assert str(error.value) == f"{source}: {message}"


SCHEMA_1 = """
CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE judgments (judge TEXT NOT NULL, template_version TEXT NOT NULL, answer_key TEXT NOT NULL,
    model TEXT NOT NULL, item_key TEXT NOT NULL, item_id TEXT NOT NULL, dimension TEXT NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, reply TEXT NOT NULL, verdict TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (judge, template_version, answer_key));
INSERT INTO judgments VALUES ('openai/mock', '1', 'k', 'openai/mock', 'x::y::old', 'old', 'Privacy', 'q', 'a',
    '[[safe]]', 'safe', 1700000000.0);
"""

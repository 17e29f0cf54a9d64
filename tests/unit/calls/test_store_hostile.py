"""Foreign and damaged stores (issue 33): a file that is not ours is refused before a byte of it changes; one of
ours that is damaged is named with how to recover it; a store that cannot be written is replayed read-only."""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.synchronize
import os
import sqlite3
from pathlib import Path

import pytest
from suites import sample_request

from pytest_faef.calls import store as store_module
from pytest_faef.calls.store import ResponseStore, StoreError
from pytest_faef.core.requests import ModelReply


def database(path: Path, *statements: str) -> bytes:
    """An SQLite file made of ``statements``, in the default journal mode; its bytes."""
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    return path.read_bytes()


def refused(path: Path, message: str) -> None:
    before = path.read_bytes()
    with pytest.raises(StoreError) as excinfo:
        ResponseStore(path)
    assert message in str(excinfo.value)
    assert path.read_bytes() == before  # not a byte changed
    assert not path.with_name(path.name + "-wal").exists()  # and the journal mode was not switched


def test_an_unrelated_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    database(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)", "INSERT INTO users VALUES (1, 'a@b')")

    refused(path, "not a pytest-faef response store: an SQLite database with no pytest-faef schema in a meta table")


def test_a_database_with_a_meta_table_of_its_own_is_refused_before_any_table_is_created(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    database(path, "CREATE TABLE meta (key TEXT, val TEXT)", "INSERT INTO meta VALUES ('owner', 'someone')")

    refused(path, "no pytest-faef schema in a meta table")
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"meta"}


def test_a_responses_table_of_other_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.sqlite"
    database(
        path,
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta VALUES ('schema_version', '3')",
        "CREATE TABLE responses (key TEXT PRIMARY KEY, body BLOB)",
    )

    refused(path, "its responses table has no column model, request, text")


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"PK\x03\x04 a zip file, say")

    refused(path, "not a pytest-faef response store")


def test_a_damaged_store_is_named_with_how_to_recover_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with ResponseStore(path) as store:
        for number in range(300):
            store.put(dataclasses.replace(sample_request(), seed=number), ModelReply(text="x" * 500))
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3 : page * 3 + 64] = b"\xff" * 64  # one page of the replies' table, overwritten
    path.write_bytes(bytes(data))

    with pytest.raises(StoreError) as excinfo:
        ResponseStore(path)

    message = str(excinfo.value)
    assert message.startswith(f"{path}: the response store is damaged (")
    assert f"sqlite3 {path} .recover | sqlite3 recovered.sqlite" in message and "or delete it" in message


def test_a_read_only_store_replays_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    request = sample_request()
    with ResponseStore(path) as store:
        store.put(request, ModelReply(text="Option: [[A]]"))
    before = path.read_bytes()

    with ResponseStore(path, read_only=True) as store:
        assert store.read_only
        stored = store.get(request)
        store.put(dataclasses.replace(sample_request(), seed=9), ModelReply(text="new"))  # skipped: nothing is kept
        store.add_spend("run", 1.0)
        assert store.claim_drift_check("run", "m")

    assert stored is not None and stored.text == "Option: [[A]]"
    assert path.read_bytes() == before
    with ResponseStore(path) as store:
        assert store.get(dataclasses.replace(sample_request(), seed=9)) is None


def test_a_store_in_a_folder_that_cannot_be_written_is_opened_immutable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI cache restored read-only: the write-ahead log's files cannot be made beside it, so it is read as
    immutable. (Permissions do not bind root, so the folder's are simulated.)"""
    path = tmp_path / "store.sqlite"
    request = sample_request()
    with ResponseStore(path) as store:
        store.put(request, ModelReply(text="kept"))
    monkeypatch.setattr(store_module.os, "access", lambda target, mode: mode != os.W_OK)

    with ResponseStore(path) as store:
        assert store.read_only
        assert store.get(request) is not None
    assert not path.with_name(path.name + "-shm").exists()


def test_a_replay_only_open_of_a_missing_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no response store there to read"):
        ResponseStore(tmp_path / "none.sqlite", read_only=True)


def test_a_database_with_no_tables_yet_is_made_a_store(tmp_path: Path) -> None:
    # What another process of the run leaves for an instant while it creates the store: WAL on, no table yet.
    path = tmp_path / "store.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()

    with ResponseStore(path) as store:
        store.put(sample_request(), ModelReply(text="kept"))
        assert store.get(sample_request()) is not None


def _open_together(path: str, barrier: multiprocessing.synchronize.Barrier) -> str:
    barrier.wait()
    try:
        ResponseStore(Path(path)).close()
    except StoreError as exc:
        return str(exc)
    return ""


def test_processes_that_create_one_store_together_all_open_it(tmp_path: Path) -> None:
    # xdist workers open a new store at the same moment: none may take the half-made file for a foreign one.
    context = multiprocessing.get_context("spawn")
    for attempt in range(6):
        path = tmp_path / f"store-{attempt}.sqlite"
        with context.Manager() as manager, context.Pool(4) as pool:
            barrier = manager.Barrier(4)
            errors = pool.starmap(_open_together, [(str(path), barrier)] * 4)
        assert errors == [""] * 4

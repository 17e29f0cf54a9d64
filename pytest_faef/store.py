"""The response store: every model reply, keyed by its request, in one SQLite file.

Each reply is committed as it arrives (WAL journal), so a run killed at any moment loses nothing
and the next run asks only for what is missing. WAL with a busy timeout lets several xdist
workers write at once. Requests hold no credentials, so neither does the store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from pytest_faef.models import ModelReply, ModelRequest

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(Exception):
    """A store file that cannot be opened or is not ours."""


class ResponseStore:
    """Thread-safe access to the store file; one connection per process, guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
            self._connection.executescript(_SCHEMA)
            self._connection.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            version = self._connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(f"{path}: cannot open the response store: {exc}") from None
        if version != str(SCHEMA_VERSION):
            raise StoreError(f"{path}: response store schema {version}, this pytest-faef reads {SCHEMA_VERSION}")
        self._lock = threading.Lock()

    def get(self, request: ModelRequest) -> ModelReply | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT text, prompt_tokens, completion_tokens, cost FROM responses WHERE key = ?", (request.key(),)
            ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost = row
        return ModelReply(
            text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost, cached=True
        )

    def put(self, request: ModelRequest, reply: ModelReply) -> None:
        payload = json.dumps(request.to_json(), ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.key(),
                    request.model,
                    payload,
                    reply.text,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    reply.cost,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()

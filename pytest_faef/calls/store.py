"""The response store: every model reply, keyed by its request, and the judge's verdicts, in one SQLite file.

Each reply is committed as it arrives (WAL journal), so a run killed at any moment loses nothing
and the next run asks only for what is missing. WAL with a busy timeout lets several xdist
workers write at once. Requests hold no credentials, so neither does the store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from pytest_faef.core.human_verdicts import verdict_key
from pytest_faef.core.requests import ModelReply, ModelRequest

# 2: replies say their endpoint, revision and when the drift check last confirmed them; judgments are
#    kept per judge endpoint and revision; drift checks are recorded (issue 11).
# 3: replies keep a reasoning model's thinking apart, with its tokens; the texts that requests name by digest
#    (system prompts, context turns) are kept once each (issue 27).
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    created REAL NOT NULL,
    endpoint TEXT,
    revision TEXT,
    verified REAL,
    reasoning TEXT NOT NULL DEFAULT '',
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    run TEXT
);
CREATE TABLE IF NOT EXISTS texts (digest TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS judgments (
    judge TEXT NOT NULL,
    judge_endpoint TEXT NOT NULL,
    judge_revision TEXT NOT NULL,
    template_version TEXT NOT NULL,
    answer_key TEXT NOT NULL,
    model TEXT NOT NULL,
    item_key TEXT NOT NULL,
    item_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    reply TEXT NOT NULL,
    verdict TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (judge, judge_endpoint, judge_revision, template_version, answer_key)
);
CREATE TABLE IF NOT EXISTS spend (run TEXT PRIMARY KEY, cost REAL NOT NULL);
CREATE TABLE IF NOT EXISTS drift_checks (
    run TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run, target)
);
"""
# Schema 1 kept judgments per judge name only; its rows carry over with no endpoint or revision.
_MIGRATE_FROM_1 = """
ALTER TABLE responses ADD COLUMN endpoint TEXT;
ALTER TABLE responses ADD COLUMN revision TEXT;
ALTER TABLE responses ADD COLUMN verified REAL;
ALTER TABLE judgments RENAME TO judgments_1;
CREATE TABLE judgments (
    judge TEXT NOT NULL,
    judge_endpoint TEXT NOT NULL,
    judge_revision TEXT NOT NULL,
    template_version TEXT NOT NULL,
    answer_key TEXT NOT NULL,
    model TEXT NOT NULL,
    item_key TEXT NOT NULL,
    item_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    reply TEXT NOT NULL,
    verdict TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (judge, judge_endpoint, judge_revision, template_version, answer_key)
);
INSERT INTO judgments SELECT judge, '', '', template_version, answer_key, model, item_key, item_id, dimension,
    question, answer, reply, verdict, created FROM judgments_1;
DROP TABLE judgments_1;
UPDATE meta SET value = '2' WHERE name = 'schema_version';
"""
# Schema 2 had no reasoning: its replies carry over with none.
_MIGRATE_FROM_2 = """
ALTER TABLE responses ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
ALTER TABLE responses ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET value = '3' WHERE name = 'schema_version';
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Judgment:
    """A judge's verdict on one open-ended answer, kept so that a person can review it (``faef review --verdicts``)."""

    judge: str
    template_version: str
    model: str  # the model that gave the answer
    item_key: str
    item_id: str
    dimension: str
    question: str
    answer: str
    reply: str  # the judge's raw reply
    verdict: str  # safe | unsafe | unparseable
    created: float = 0.0
    judge_endpoint: str = ""  # where the judge was served, when it was not its provider's fixed endpoint
    judge_revision: str = ""

    @property
    def answer_key(self) -> str:
        return verdict_key(self.question, self.answer)


_JUDGMENT_DETAILS = "model, item_key, item_id, dimension, reply, verdict"
_PUT_JUDGMENT = f"""
INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (judge, judge_endpoint, judge_revision, template_version, answer_key) DO UPDATE SET
    ({_JUDGMENT_DETAILS}, created) = (
        excluded.model, excluded.item_key, excluded.item_id, excluded.dimension, excluded.reply, excluded.verdict,
        excluded.created
    )
WHERE ({_JUDGMENT_DETAILS}) IS NOT (
    excluded.model, excluded.item_key, excluded.item_id, excluded.dimension, excluded.reply, excluded.verdict
)
"""


class StoreError(Exception):
    """A store file that cannot be opened or is not ours."""


_SQLITE_HEADER = b"SQLite format 3\x00"
# The columns every schema's replies had: a table without them is someone else's, whatever it is called.
_REPLY_COLUMNS = ("key", "model", "request", "text", "prompt_tokens", "completion_tokens", "cost", "created")


def _recover_hint(path: Path) -> str:
    return (
        f"recover what it holds with `sqlite3 {path} .recover | sqlite3 recovered.sqlite` and give that file, "
        "or delete it to start afresh"
    )


def inspect_store(path: Path) -> None:
    """Check, reading only, that an existing file is a pytest-faef response store in one piece (issue 33).

    Raises StoreError before anything is written: a file that is not ours (not SQLite, or a database with no
    pytest-faef ``meta``, or a ``responses`` table of other columns) is left as it is, byte for byte; one of ours
    that is damaged is named with how to recover it. A file found sound is not checked again by this process.
    """
    resolved = path.resolve()
    if resolved in _SOUND:
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the response store: {exc.strerror or exc}") from None
    leave = "the file is left as it is; choose another path for --faef-store"
    if not header:
        return  # an empty file holds nothing to lose: SQLite makes it a database (another worker may be doing so)
    if header != _SQLITE_HEADER:
        raise StoreError(f"{path}: not a pytest-faef response store: not an SQLite database ({leave})")
    try:
        reader = _read_only(path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the response store: {exc}") from None
    try:
        tables = {row[0] for row in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return  # a database with nothing in it yet: another process of the run is creating the store
        meta = {row[1] for row in reader.execute("PRAGMA table_info(meta)")} if "meta" in tables else set()
        version = None
        if {"name", "value"} <= meta:
            row = reader.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            version = row[0] if row is not None else None
        if version is None:
            raise StoreError(
                f"{path}: not a pytest-faef response store: an SQLite database with no pytest-faef schema in a "
                f"meta table ({leave})"
            )
        if "responses" in tables:
            columns = {row[1] for row in reader.execute("PRAGMA table_info(responses)")}
            if missing := [column for column in _REPLY_COLUMNS if column not in columns]:
                raise StoreError(
                    f"{path}: not a pytest-faef response store: its responses table has no column "
                    f"{', '.join(missing)} ({leave})"
                )
        problem = reader.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise StoreError(f"{path}: the response store is damaged ({problem}): {_recover_hint(path)}")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: the response store is damaged ({exc}): {_recover_hint(path)}") from None
    finally:
        reader.close()
    _SOUND.add(resolved)


_SOUND: set[Path] = set()  # the store files this process found to be ours and in one piece


def _read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection that cannot write: ``mode=ro``, and ``immutable`` where the directory cannot take the
    write-ahead log's shared-memory file (a read-only checkout, a CI cache mounted read-only)."""
    resolved = path.resolve()
    immutable = "&immutable=1" if not os.access(resolved.parent, os.W_OK) else ""
    uri = f"file:{urllib.parse.quote(str(resolved))}?mode=ro{immutable}"
    return sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=check_same_thread, isolation_level=None)


def writable(path: Path) -> bool:
    """Whether this process may write the store at ``path`` (it may create it, when there is none)."""
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)
    parent = next((folder for folder in path.resolve().parents if folder.exists()), None)
    return parent is not None and os.access(parent, os.W_OK)


class ResponseStore:
    """Thread-safe access to the store file; one connection per process, guarded by a lock.

    Opened ``read_only`` (or when the file cannot be written), it replays what it holds and keeps nothing new:
    every write is skipped, and ``read_only`` says so for the run to tell its user.
    """

    def __init__(self, path: Path, *, existed: bool | None = None, read_only: bool = False) -> None:
        """Open or create the store. ``existed`` overrides whether it counts as pre-existing
        (xdist workers are told what the controller saw, since one of them creates it)."""
        self.path = path
        self.existed = path.exists() if existed is None else existed
        self._lock = threading.Lock()
        if path.exists():
            inspect_store(path)  # nothing is written to a file that is not ours, or damaged
        elif read_only:
            raise StoreError(f"{path}: no response store there to read")
        self.read_only = read_only or not writable(path)
        if self.read_only:
            self._connection = self._open_read_only(path)
            columns = {row[1] for row in self._connection.execute("PRAGMA table_info(responses)")}
            self._run_column = "run" in columns
            return
        connection = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
            _switch_to_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
            # One transaction: another process of the run (an xdist worker) checking the file meanwhile sees
            # either no tables yet or the whole schema with its version, never a database that looks foreign.
            connection.executescript(
                f"BEGIN IMMEDIATE;{_SCHEMA}"
                f"INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;"
            )
            version = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
            if version in ("1", "2"):
                version = _migrate(connection)
            if version != str(SCHEMA_VERSION):
                raise StoreError(f"{path}: response store schema {version}, this pytest-faef reads {SCHEMA_VERSION}")
            _add_run_column(connection)
        except (OSError, sqlite3.DatabaseError, StoreError) as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot open the response store: {exc}") from None
        self._connection = connection
        self._run_column = True

    @staticmethod
    def _open_read_only(path: Path) -> sqlite3.Connection:
        connection = _read_only(path, check_same_thread=False)
        version = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        if version != str(SCHEMA_VERSION):
            connection.close()
            raise StoreError(
                f"{path}: response store schema {version}, this pytest-faef reads {SCHEMA_VERSION}; it cannot be "
                "brought up to date read-only: run once where the file can be written"
            )
        return connection

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, request: ModelRequest) -> ModelReply | None:
        run = "run" if self._run_column else "NULL"
        with self._lock:
            row = self._connection.execute(
                "SELECT text, prompt_tokens, completion_tokens, cost, created, reasoning, reasoning_tokens,"
                f" {run} FROM responses WHERE key = ?",
                (request.key(),),
            ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, cost, created, reasoning, reasoning_tokens, recorded_by = row
        return ModelReply(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            cached=True,
            recorded_at=created,
            reasoning=reasoning,
            reasoning_tokens=reasoning_tokens,
            recorded_by=recorded_by or "",
        )

    def put(self, request: ModelRequest, reply: ModelReply) -> None:
        """Keep ``reply`` under ``request``'s key; the request's system prompt and context once each, by digest."""
        if self.read_only:
            return
        payload = json.dumps(request.to_json(), ensure_ascii=False, sort_keys=True)
        with self._lock:
            if texts := request.shared_texts():
                self._connection.executemany("INSERT OR IGNORE INTO texts VALUES (?, ?)", texts.items())
            self._connection.execute(
                "INSERT OR REPLACE INTO responses (key, model, request, text, prompt_tokens, completion_tokens, cost,"
                " created, endpoint, revision, verified, reasoning, reasoning_tokens, run)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    request.key(),
                    request.model,
                    payload,
                    reply.text,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    reply.cost,
                    reply.recorded_at or time.time(),
                    request.endpoint,
                    request.revision,
                    reply.reasoning,
                    reply.reasoning_tokens,
                    reply.recorded_by or None,
                ),
            )

    def text(self, digest: str) -> str | None:
        """The system prompt or context a stored request names by ``digest``."""
        with self._lock:
            row = self._connection.execute("SELECT text FROM texts WHERE digest = ?", (digest,)).fetchone()
        return str(row[0]) if row is not None else None

    def last_checked(self, keys: Iterable[str]) -> dict[str, float]:
        """When each stored reply was last known to be the model's answer: recorded, or since confirmed
        by a drift check. The drift check samples the longest unchecked first."""
        found: dict[str, float] = {}
        wanted = list(keys)
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._connection.execute(
                    f"SELECT key, MAX(created, COALESCE(verified, 0)) FROM responses WHERE key IN"
                    f" ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                found.update(rows)
        return found

    def confirm(self, keys: Iterable[str], when: float) -> None:
        """Record that a drift check found these stored replies unchanged at ``when``."""
        if self.read_only:
            return
        with self._lock:
            self._connection.executemany(
                "UPDATE responses SET verified = ? WHERE key = ?", [(when, key) for key in keys]
            )

    def stored_for(self, model: str) -> list[tuple[str | None, str | None, int]]:
        """(endpoint, revision, replies) for each endpoint and revision the store holds replies of ``model`` for."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT endpoint, revision, COUNT(*) FROM responses WHERE model = ? GROUP BY endpoint, revision"
                " ORDER BY COUNT(*) DESC",
                (model,),
            ).fetchall()
        return [(endpoint, revision, int(count)) for endpoint, revision, count in rows]

    def put_judgment(self, judgment: Judgment) -> None:
        """Keep the judge's latest verdict on this answer (the same answer from two models is one row).

        Every run writes the judgment of every item; a row that would not change is left alone, so a
        rerun from the store costs a lookup per item, not a write.
        """
        if self.read_only:
            return
        with self._lock:
            self._connection.execute(
                _PUT_JUDGMENT,
                (
                    judgment.judge,
                    judgment.judge_endpoint,
                    judgment.judge_revision,
                    judgment.template_version,
                    judgment.answer_key,
                    judgment.model,
                    judgment.item_key,
                    judgment.item_id,
                    judgment.dimension,
                    judgment.question,
                    judgment.answer,
                    judgment.reply,
                    judgment.verdict,
                    judgment.created or time.time(),
                ),
            )

    def judgments(self) -> list[Judgment]:
        """Every stored judgment, ordered by item and judge."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT judge, template_version, model, item_key, item_id, dimension, question, answer, reply,"
                " verdict, created, judge_endpoint, judge_revision FROM judgments ORDER BY item_key, judge, created"
            ).fetchall()
        fields = (
            *("judge", "template_version", "model", "item_key", "item_id", "dimension", "question", "answer"),
            *("reply", "verdict", "created", "judge_endpoint", "judge_revision"),
        )
        return [Judgment(**dict(zip(fields, row, strict=True))) for row in rows]

    def add_spend(self, run: str, cost: float) -> None:
        """Add what a reply cost to run ``run``'s spend, which every xdist worker of the run shares."""
        if self.read_only:
            return
        with self._lock:
            self._connection.execute(
                "INSERT INTO spend (run, cost) VALUES (?, ?)"
                " ON CONFLICT (run) DO UPDATE SET cost = cost + excluded.cost",
                (run, cost),
            )

    def spent(self, run: str) -> float:
        """What run ``run``'s replies have cost so far (US dollars)."""
        with self._lock:
            row = self._connection.execute("SELECT cost FROM spend WHERE run = ?", (run,)).fetchone()
        return float(row[0]) if row is not None else 0.0

    def claim_drift_check(self, run: str, target: str) -> bool:
        """Whether this process is the first of run ``run`` to check ``target`` for drift (and so does it).

        xdist workers of one run share the check: one claims it, the others wait for its result. A read-only store
        records no claim: each process checks for itself.
        """
        if self.read_only:
            return True
        with self._lock:
            cursor = self._connection.execute(
                "INSERT OR IGNORE INTO drift_checks (run, target, result, created) VALUES (?, ?, NULL, ?)",
                (run, target, time.time()),
            )
            return cursor.rowcount == 1

    def finish_drift_check(self, run: str, target: str, result: str) -> None:
        if self.read_only:
            return
        with self._lock:
            self._connection.execute(
                "UPDATE drift_checks SET result = ? WHERE run = ? AND target = ?", (result, run, target)
            )

    def drift_check_result(self, run: str, target: str) -> str | None:
        """The result another process recorded for this run's check of ``target``; None while it runs."""
        with self._lock:
            row = self._connection.execute(
                "SELECT result FROM drift_checks WHERE run = ? AND target = ?", (run, target)
            ).fetchone()
        return row[0] if row is not None else None

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def _add_run_column(connection: sqlite3.Connection) -> None:
    """Stores made before replies named their run get the column (NULL for their replies: a run not known)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(responses)")}
    if "run" in columns:
        return
    try:
        connection.execute("ALTER TABLE responses ADD COLUMN run TEXT")
    except sqlite3.OperationalError as exc:  # another process of the run added it first
        if "duplicate column" not in str(exc):
            raise


def _migrate(connection: sqlite3.Connection) -> str:
    """Bring a schema-1 or -2 store to this schema in one transaction; another process may be doing it too."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        for old, script in (("1", _MIGRATE_FROM_1), ("2", _MIGRATE_FROM_2)):
            if version == old:
                for statement in script.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                version = str(int(old) + 1)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return str(version)


def _switch_to_wal(connection: sqlite3.Connection, *, patience: float = 60.0) -> None:
    """Enable WAL, waiting while another process holds the file.

    Changing the journal mode does not honour the busy timeout (it fails at once with "database
    is locked"), and xdist workers may open a new store together.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoreMerge:
    """What merging one store into another did (``faef merge --stores``, issue 16)."""

    source: Path
    replies: int  # replies in the source
    added: int  # replies under keys the target did not hold
    newer: int  # replies that replaced an older reply under the same key
    judgments: int  # judgments in the source
    judgments_taken: int  # judgments the target did not hold, or held older


# Schema 1 had no endpoint, revision or drift-check time on replies, and no judge endpoint or revision.
_SOURCE_REPLIES = {
    "1": "SELECT key, model, request, text, prompt_tokens, completion_tokens, cost, created, NULL, NULL, NULL, '', 0",
    "2": "SELECT key, model, request, text, prompt_tokens, completion_tokens, cost, created, endpoint, revision, "
    "verified, '', 0",
    "3": "SELECT key, model, request, text, prompt_tokens, completion_tokens, cost, created, endpoint, revision, "
    "verified, reasoning, reasoning_tokens",
}
_SOURCE_JUDGMENTS = {
    "1": "SELECT judge, '', '', template_version, answer_key, model, item_key, item_id, dimension, question, "
    "answer, reply, verdict, created",
    "2": "SELECT judge, judge_endpoint, judge_revision, template_version, answer_key, model, item_key, item_id, "
    "dimension, question, answer, reply, verdict, created",
}
_SOURCE_JUDGMENTS["3"] = _SOURCE_JUDGMENTS["2"]
# The newest reply per key wins: a later recording (record mode all, a drift check that found a change)
# is the model's current answer. Of two recordings made at the same time, the one checked later wins.
_MERGE_REPLY = """
INSERT INTO responses (key, model, request, text, prompt_tokens, completion_tokens, cost, created, endpoint, revision,
    verified, reasoning, reasoning_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    (model, request, text, prompt_tokens, completion_tokens, cost, created, endpoint, revision, verified, reasoning,
        reasoning_tokens) = (
        excluded.model, excluded.request, excluded.text, excluded.prompt_tokens, excluded.completion_tokens,
        excluded.cost, excluded.created, excluded.endpoint, excluded.revision, excluded.verified, excluded.reasoning,
        excluded.reasoning_tokens
    )
WHERE excluded.created > responses.created
    OR (excluded.created = responses.created AND COALESCE(excluded.verified, 0) > COALESCE(responses.verified, 0))
"""
_MERGE_JUDGMENT = f"""
INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (judge, judge_endpoint, judge_revision, template_version, answer_key) DO UPDATE SET
    ({_JUDGMENT_DETAILS}, question, answer, created) = (
        excluded.model, excluded.item_key, excluded.item_id, excluded.dimension, excluded.reply, excluded.verdict,
        excluded.question, excluded.answer, excluded.created
    )
WHERE excluded.created > judgments.created
"""
_MERGE_CHUNK = 2000


def merge_store(target: ResponseStore, source: Path) -> StoreMerge:
    """Take every reply, judgment and drift check of the store at ``source`` into ``target``, keeping
    the newest row per key, in one transaction. The source is only read, and left as it is (a schema-1
    store is read as it stands, not migrated). Raises StoreError naming the file."""
    if not source.is_file():
        raise StoreError(f"{source}: no such response store")
    # A store closed by its last writer is one file: read it as immutable, which creates no -wal and -shm
    # files beside it (a read-only WAL connection would, and leave them). A store with a write-ahead log
    # beside it (a run was killed, or is still running) is read through the log.
    wal = source.with_name(source.name + "-wal").exists()
    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{source}: cannot open the response store: {exc}") from None
    try:
        version = _source_version(reader, source)
        with target._lock:
            connection = target._connection
            replies_before = connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            connection.execute("BEGIN IMMEDIATE")
            try:
                changes = connection.total_changes
                replies = _copy(reader, connection, f"{_SOURCE_REPLIES[version]} FROM responses", _MERGE_REPLY)
                reply_changes = connection.total_changes - changes
                changes = connection.total_changes
                judgments = _copy(reader, connection, f"{_SOURCE_JUDGMENTS[version]} FROM judgments", _MERGE_JUDGMENT)
                judgment_changes = connection.total_changes - changes
                _copy(
                    reader,
                    connection,
                    "SELECT run, target, result, created FROM drift_checks",
                    "INSERT OR IGNORE INTO drift_checks VALUES (?, ?, ?, ?)",
                )
                _copy(reader, connection, "SELECT digest, text FROM texts", "INSERT OR IGNORE INTO texts VALUES (?, ?)")
                added = connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0] - replies_before
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{source}: cannot read the response store: {exc}") from None
    finally:
        reader.close()
    return StoreMerge(
        source=source,
        replies=replies,
        added=added,
        newer=reply_changes - added,
        judgments=judgments,
        judgments_taken=judgment_changes,
    )


def _source_version(reader: sqlite3.Connection, source: Path) -> str:
    tables = {row[0] for row in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "responses", "judgments"} <= tables:
        raise StoreError(f"{source}: not a pytest-faef response store (no responses, judgments and meta tables)")
    row = reader.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    version = str(row[0]) if row else "?"
    if version not in _SOURCE_REPLIES:
        raise StoreError(f"{source}: response store schema {version}, this pytest-faef reads {SCHEMA_VERSION}")
    if version == "1" or "drift_checks" not in tables:
        # Schema 1 kept no drift checks; an empty query keeps the copy below uniform.
        reader.execute("CREATE TEMP TABLE IF NOT EXISTS drift_checks (run, target, result, created)")
    if "texts" not in tables:  # nor did any schema before 3 keep texts
        reader.execute("CREATE TEMP TABLE IF NOT EXISTS texts (digest, text)")
    return version


def _copy(reader: sqlite3.Connection, writer: sqlite3.Connection, select: str, insert: str) -> int:
    """Every row ``select`` reads from ``reader``, written by ``insert``, in chunks; how many there were."""
    cursor = reader.execute(select)
    total = 0
    while rows := cursor.fetchmany(_MERGE_CHUNK):
        writer.executemany(insert, rows)
        total += len(rows)
    return total

"""The SQLite ledger's side tables: object stamps and versions, maintenance jobs, worker heartbeats."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from icefloe.ledger.base import Job, JobState, WorkerInfo

__all__ = ["ADDED_COLUMNS", "SIDE_SCHEMA", "SideTables", "iter_statements", "migrate"]

SIDE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
    owner TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, detail TEXT NOT NULL DEFAULT '{}', error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(kind, target, state);
CREATE TABLE IF NOT EXISTS objects (
    source TEXT NOT NULL, key TEXT NOT NULL, stamp TEXT NOT NULL, PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS workers (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL, stopped_at REAL
);
"""
# columns later versions added: a ledger an older icefloe created gets them when it is opened
ADDED_COLUMNS = {
    "events": [("version", "INTEGER NOT NULL DEFAULT 0")],
    # the object's current version: its bytes, and how often they changed (NULL: not known yet)
    "objects": [("content_hash", "TEXT"), ("version", "INTEGER")],
}
# a worker that has sent nothing for this long is forgotten (it is long gone, or stopped)
_FORGET_AFTER = 86400.0


class SideTables:
    _db: sqlite3.Connection
    _lock: threading.RLock

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def current_version(self, db: sqlite3.Connection, source: str, key: str) -> tuple[str | None, int]:
        """The object's current bytes and version; for ledgers older than versions, the newest event's."""
        row = db.execute("SELECT content_hash, version FROM objects WHERE source=? AND key=?", (source, key)).fetchone()
        if row is None or row[0] is None:
            row = db.execute(
                "SELECT content_hash, version FROM events WHERE source=? AND key=? ORDER BY landed_at DESC, rowid DESC LIMIT 1",
                (source, key),
            ).fetchone()
        return (row[0], int(row[1] or 0)) if row else (None, 0)

    def set_version(self, db: sqlite3.Connection, source: str, key: str, content_hash: str, version: int) -> None:
        db.execute(
            "INSERT INTO objects (source, key, stamp, content_hash, version) VALUES (?, ?, '', ?, ?)"
            " ON CONFLICT(source, key) DO UPDATE SET content_hash=excluded.content_hash, version=excluded.version",
            (source, key, content_hash, version),
        )

    def object_stamp(self, source: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT stamp FROM objects WHERE source=? AND key=?", (source, key)).fetchone()
        return row[0] if row else None

    def object_stamps(self, source: str, keys: list[str]) -> dict[str, str]:
        # a self-contained method: chunks keep each query under SQLite's bound-parameter limit
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, stamp FROM objects WHERE source=? AND key IN ({marks})", (source, *chunk))
                found.update((key, stamp) for key, stamp in rows if stamp)
        return found

    def set_object_stamp(self, source: str, key: str, stamp: str) -> None:
        with self._tx() as db:
            # an upsert, not INSERT OR REPLACE: the row also holds the current version
            db.execute(
                "INSERT INTO objects (source, key, stamp) VALUES (?, ?, ?)"
                " ON CONFLICT(source, key) DO UPDATE SET stamp=excluded.stamp",
                (source, key, stamp),
            )

    def start_job(self, kind: str, target: str, owner: str, *, stale_after: float) -> Job | None:
        now = time.time()
        with self._tx() as db:
            busy = db.execute(
                "SELECT 1 FROM jobs WHERE kind=? AND target=? AND state='running' AND started_at>?",
                (kind, target, now - stale_after),
            ).fetchone()
            if busy:
                return None
            # a running row older than that belonged to a worker that died mid-job
            db.execute(
                "UPDATE jobs SET state='failed', ended_at=?, error='abandoned (worker stopped)' "
                "WHERE kind=? AND target=? AND state='running'",
                (now, kind, target),
            )
            cursor = db.execute(
                "INSERT INTO jobs (kind, target, state, owner, started_at) VALUES (?, ?, 'running', ?, ?)",
                (kind, target, owner, now),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return Job(job_id, kind, target, "running", owner, now)

    def finish_job(self, job: Job, state: JobState, detail: dict[str, Any], error: str | None = None) -> None:
        job.state, job.ended_at, job.detail, job.error = state, time.time(), detail, error
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state=?, ended_at=?, detail=?, error=? WHERE id=?",
                (state, job.ended_at, json.dumps(detail, default=str), error, job.id),
            )

    def jobs(self, *, kind: str | None = None, target: str | None = None, limit: int | None = None) -> list[Job]:
        sql = "SELECT id, kind, target, state, owner, started_at, ended_at, detail, error FROM jobs WHERE 1=1"
        params: list[Any] = []
        if kind is not None:
            sql, params = sql + " AND kind=?", [*params, kind]
        if target is not None:
            sql, params = sql + " AND target=?", [*params, target]
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

    def heartbeat(self, owner: str, *, stopped: bool = False) -> None:
        now = time.time()
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        with self._tx() as db:
            db.execute(
                "INSERT INTO workers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(owner) DO UPDATE SET"
                " heartbeat_at=excluded.heartbeat_at, stopped_at=excluded.stopped_at",
                (owner, host, int(pid) if pid.isdigit() else -1, now, now, now if stopped else None),
            )
            if stopped:
                db.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - _FORGET_AFTER,))

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT owner, host, pid, started_at, heartbeat_at, stopped_at FROM workers ORDER BY heartbeat_at DESC"
            ).fetchall()
        return [WorkerInfo(*r) for r in rows]


def iter_statements(schema: str) -> Iterator[str]:
    yield from (s for s in schema.split(";") if s.strip())


def migrate(db: sqlite3.Connection) -> None:
    """Add the columns newer code needs; idempotent, runs inside the opening transaction."""
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


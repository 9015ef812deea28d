"""What every SQL ledger shares below the event policy: the connection and its transactions,
the schema version, and the side tables (object stamps and versions, jobs, worker heartbeats,
the step log)."""

from __future__ import annotations

import json
import sqlite3
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from icefloe.errors import IcefloeError, LedgerUnavailableError
from icefloe.ledger import migrations
from icefloe.ledger.base import BELOW_FLOOR, Event, Job, JobState, Ledger, Step, WorkerInfo
from icefloe.ledger.counters import Tally
from icefloe.ledger.dialect import DB, Dialect

__all__ = ["COLUMNS", "SELECT", "SqlBase", "event_row"]

COLUMNS = [
    "id", "source", "key", "uri", "content_hash", "size", "pipeline", "state", "attempts",
    "max_attempts", "error", "error_kind", "rows_in", "rows_out", "rows_quarantined", "table",
    "snapshot_id", "landed_at", "started_at", "committed_at", "updated_at", "next_attempt_at",
    "lease_owner", "lease_expires_at", "stamp", "version", "epoch", "seq", "traceparent",
]  # fmt: skip
SELECT = "SELECT " + ", ".join(f'"{c}"' for c in COLUMNS) + " FROM events"
log = logging.getLogger(__name__)
# a worker that has sent nothing for this long is forgotten (it is long gone, or stopped)
_FORGET_AFTER = 86400.0


class _Undo(Exception):
    """Roll the transaction back: a compare-and-swap found fewer rows than it must change."""


def event_row(row: Any) -> Event:
    return Event(**dict(zip(COLUMNS, row, strict=True)))


class SqlBase(Ledger):
    """A backend sets `dialect`, implements `_connect`, and says which errors mean the
    connection is gone (`_lost`): those surface as LedgerUnavailableError and the next call
    connects again. One connection per ledger, shared by its threads under a lock."""

    dialect: Dialect
    # the statement opening a write transaction (SQLite: take the write lock at once)
    begin = "BEGIN"
    # which database, for error messages (a backend with a URI names it, password redacted)
    where = "(unnamed)"

    def __init__(self, *, upgrade: bool = True) -> None:
        self._lock = threading.RLock()
        self._db: DB | None = None
        self._closed = False
        self._last_landed = 0.0
        # > 0 while `transaction()` holds one open: the `_tx` of the calls made inside join it
        self._depth = 0
        # the open transaction's changes to the counters (one transaction at a time: `_lock`)
        self._tally = Tally()
        with self._tx() as db:
            if upgrade:
                migrations.apply(db, self.dialect)
            else:
                migrations.status(db, self.dialect)  # refuses a ledger newer than this code

    # -- connection -----------------------------------------------------------------------
    def _connect(self) -> DB:
        raise NotImplementedError

    def _lost(self, exc: BaseException) -> bool:
        return False

    def _transient(self, exc: BaseException) -> bool:
        """The transaction was rolled back but trying again may work (a deadlock, a lock timeout)."""
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - it is gone already
                log.debug("closing a lost ledger connection failed", exc_info=True)

    def _gone(self, exc: BaseException) -> LedgerUnavailableError:
        self._disconnect()
        return LedgerUnavailableError(f"the ledger connection was lost ({type(exc).__name__}: {exc}); reconnecting on the next call")

    def _connection(self) -> DB:
        if self._closed:
            raise IcefloeError("the ledger is closed")
        if self._db is None:
            try:
                self._db = self._connect()
            except Exception as exc:
                if self._lost(exc):
                    raise LedgerUnavailableError(f"cannot reach the ledger database {self.where}: {exc}") from exc
                raise
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around every ledger call made inside it (in this thread): they commit
        together, or none of them does if anything raises. The HTTP API's group commit lands the
        events of many requests, their object stamps and idempotency answers this way: one
        commit, so on SQLite one WAL fsync, for all of them."""
        with self._tx():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    @contextmanager
    def _tx(self) -> Iterator[DB]:
        with self._lock:
            if self._depth:
                # inside `transaction()`, which this thread holds (the lock is ours): join it; an
                # error propagates to it, and it rolls everything back
                yield self._connection()
                return
            db = self._connection()
            self._tally.reset()
            try:
                db.execute(self.begin)
            except Exception as exc:
                if self._lost(exc):
                    raise self._gone(exc) from exc
                if self._transient(exc):
                    raise LedgerUnavailableError(f"the ledger is busy ({exc}); try again") from exc
                raise
            try:
                yield db
                self._tally.flush(db)
                db.execute("COMMIT")
            except BaseException as exc:
                self._tally.reset()
                if self._lost(exc):
                    raise self._gone(exc) from exc
                try:
                    db.execute("ROLLBACK")
                except Exception as again:  # noqa: BLE001
                    if self._lost(again):
                        raise self._gone(again) from exc
                if self._transient(exc):
                    raise LedgerUnavailableError(f"the ledger transaction was rolled back ({exc}); try again") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[DB]:
        with self._lock:
            db = self._connection()
            try:
                yield db
            except Exception as exc:
                if self._lost(exc):
                    raise self._gone(exc) from exc
                raise

    def _now(self, db: DB) -> float:
        if self.dialect.now is None:
            return time.time()
        return float(db.execute(self.dialect.now).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._disconnect()

    # -- schema ---------------------------------------------------------------------------
    def schema_status(self) -> migrations.SchemaStatus:
        with self._tx() as db:
            return migrations.status(db, self.dialect)

    def upgrade(self) -> list[migrations.Migration]:
        """Apply pending migrations (opening does this unless told not to); returns what ran."""
        with self._tx() as db:
            return migrations.apply(db, self.dialect)

    # -- objects: stamps and versions -----------------------------------------------------
    def current_version(self, db: DB, source: str, key: str) -> tuple[str | None, int]:
        """The object's current bytes and version; for ledgers older than versions, the newest event's."""
        row = db.execute("SELECT content_hash, version FROM objects WHERE source=? AND key=?", (source, key)).fetchone()
        if row is None or row[0] is None:
            row = db.execute(
                "SELECT content_hash, version FROM events WHERE source=? AND key=? ORDER BY seq DESC LIMIT 1",
                (source, key),
            ).fetchone()
        return (row[0], int(row[1] or 0)) if row else (None, 0)

    def set_version(self, db: DB, source: str, key: str, content_hash: str, version: int) -> None:
        db.execute(
            "INSERT INTO objects (source, key, stamp, content_hash, version) VALUES (?, ?, '', ?, ?)"
            " ON CONFLICT(source, key) DO UPDATE SET content_hash=excluded.content_hash, version=excluded.version",
            (source, key, content_hash, version),
        )

    def object_stamp(self, source: str, key: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT stamp FROM objects WHERE source=? AND key=?", (source, key)).fetchone()
        return row[0] if row else None

    def object_stamps(self, source: str, keys: list[str]) -> dict[str, str]:
        # chunks keep each query under SQLite's bound-parameter limit (a reconcile page is 1,000)
        found: dict[str, str] = {}
        with self._read() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, stamp FROM objects WHERE source=? AND key IN ({marks})", (source, *chunk)).fetchall()
                found.update((key, stamp) for key, stamp in rows if stamp)
        return found

    def set_object_stamp(self, source: str, key: str, stamp: str) -> None:
        with self._tx() as db:
            # an upsert, not a replace: the row also holds the current version
            db.execute(
                "INSERT INTO objects (source, key, stamp) VALUES (?, ?, ?) ON CONFLICT(source, key) DO UPDATE SET stamp=excluded.stamp",
                (source, key, stamp),
            )

    # the position lives beside the stamps, as a row of its own namespace (like a queue's
    # `#claims`): no migration, and one upsert per save
    def listing_position(self, source: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT stamp FROM objects WHERE source=? AND key='position'", (f"{source}#listing",)).fetchone()
        return row[0] if row and row[0] else None

    def set_listing_position(self, source: str, after: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO objects (source, key, stamp) VALUES (?, 'position', ?) ON CONFLICT(source, key) DO UPDATE SET stamp=excluded.stamp",
                (f"{source}#listing", after or ""),
            )

    def _floor(self, db: DB, source: str) -> str:
        """The source's floor (a row of its own, key ''), locked: claims and prunes take turns.
        The row is made first, so there is always one to lock (PostgreSQL locks no absent row)."""
        db.execute("INSERT INTO objects (source, key, stamp) VALUES (?, '', '') ON CONFLICT(source, key) DO NOTHING", (source,))
        return str(db.execute(f"SELECT stamp FROM objects WHERE source=? AND key=''{self.dialect.row_lock}", (source,)).fetchone()[0])

    def claim_stamps(self, source: str, keys: list[str], stamp: str) -> dict[str, str]:
        with self._tx() as db:
            floor = self._floor(db, source)
            below = {key for key in keys if floor and key <= floor}
            keys = [key for key in keys if key and key not in below]
            # insert-if-absent (or if released to ''), then read back: two claimants racing on
            # one key both see the one that got there first
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                db.executemany(
                    "INSERT INTO objects (source, key, stamp) VALUES (?, ?, ?) ON CONFLICT(source, key)"
                    " DO UPDATE SET stamp=excluded.stamp WHERE objects.stamp=''",
                    [(source, key, stamp) for key in chunk],
                )
            found: dict[str, str] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, stamp FROM objects WHERE source=? AND key IN ({marks})", (source, *chunk)).fetchall()
                found.update((key, value) for key, value in rows)
        found.update(dict.fromkeys(below, BELOW_FLOOR))
        return found

    def prune_stamps(self, source: str, upto: str, *, busy: str) -> str | None:
        with self._tx() as db:
            floor = self._floor(db, source)
            if floor and upto <= floor:
                return floor
            first_busy = db.execute(
                "SELECT min(key) FROM objects WHERE source=? AND key > ? AND key <= ? AND (stamp='' OR substr(stamp, 1, ?)=?)",
                (source, floor, upto, len(busy), busy),
            ).fetchone()[0]
            if first_busy is not None:
                # the floor stops at the last claim before it (claims are the keys seen, in order)
                upto = db.execute("SELECT max(key) FROM objects WHERE source=? AND key > ? AND key < ?",
                                  (source, floor, first_busy)).fetchone()[0]  # fmt: skip
                if upto is None:
                    return floor or None
            db.execute("DELETE FROM objects WHERE source=? AND key > '' AND key <= ?", (source, upto))
            db.execute("UPDATE objects SET stamp=? WHERE source=? AND key=''", (upto, source))
            return upto

    def swap_stamps(self, source: str, old: str, new: str, *, count: int | None = None) -> bool:
        try:
            with self._tx() as db:
                changed = db.execute("UPDATE objects SET stamp=? WHERE source=? AND stamp=?", (new, source, old)).rowcount
                if count is not None and changed != count:
                    raise _Undo
        except _Undo:
            return False
        return True

    # -- jobs -----------------------------------------------------------------------------
    def start_job(self, kind: str, target: str, owner: str, *, stale_after: float) -> Job | None:
        with self._tx() as db:
            now = self._now(db)
            busy = db.execute(
                f"SELECT 1 FROM jobs WHERE kind=? AND target=? AND state='running' AND started_at>?{self.dialect.row_lock}",
                (kind, target, now - stale_after),
            ).fetchone()
            if busy:
                return None
            # a running row older than that belonged to a worker that died mid-job
            db.execute(
                "UPDATE jobs SET state='failed', ended_at=?, error='abandoned (worker stopped)' WHERE kind=? AND target=? AND state='running'",
                (now, kind, target),
            )
            row = db.execute(
                "INSERT INTO jobs (kind, target, state, owner, started_at) VALUES (?, ?, 'running', ?, ?) RETURNING id",
                (kind, target, owner, now),
            ).fetchone()
        return Job(int(row[0]), kind, target, "running", owner, now)

    def finish_job(self, job: Job, state: JobState, detail: dict[str, Any], error: str | None = None) -> None:
        with self._tx() as db:
            job.state, job.ended_at, job.detail, job.error = state, self._now(db), detail, error
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
        with self._read() as db:
            rows = db.execute(sql, params).fetchall()
        return [Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

    # -- workers --------------------------------------------------------------------------
    def heartbeat(self, owner: str, *, stopped: bool = False) -> None:
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        with self._tx() as db:
            now = self._now(db)
            db.execute(
                "INSERT INTO workers (owner, host, pid, started_at, heartbeat_at, stopped_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(owner) DO UPDATE SET heartbeat_at=excluded.heartbeat_at, stopped_at=excluded.stopped_at",
                (owner, host, int(pid) if pid.isdigit() else -1, now, now, now if stopped else None),
            )
            if stopped:
                db.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - _FORGET_AFTER,))

    def workers(self) -> list[WorkerInfo]:
        with self._read() as db:
            rows = db.execute("SELECT owner, host, pid, started_at, heartbeat_at, stopped_at FROM workers ORDER BY heartbeat_at DESC").fetchall()
        return [WorkerInfo(*r) for r in rows]

    # -- step log -------------------------------------------------------------------------
    def record_step(self, event_ids: list[str], step: str, started_at: float, ended_at: float, **detail: Any) -> None:
        payload = json.dumps(detail, default=str)
        with self._tx() as db:
            db.executemany(
                "INSERT INTO steps (event_id, step, started_at, ended_at, detail) VALUES (?, ?, ?, ?, ?)",
                [(i, step, started_at, ended_at, payload) for i in event_ids],
            )

    def record_steps(self, steps: Iterable[Step]) -> None:
        rows = [(s.event_id, s.step, s.started_at, s.ended_at, json.dumps(s.detail, default=str)) for s in steps]
        if rows:
            with self._tx() as db:
                db.executemany("INSERT INTO steps (event_id, step, started_at, ended_at, detail) VALUES (?, ?, ?, ?, ?)", rows)

    def steps(self, id: str) -> list[Step]:
        with self._read() as db:
            rows = db.execute(
                "SELECT event_id, step, started_at, ended_at, detail FROM steps WHERE event_id=? ORDER BY started_at, id", (id,)
            ).fetchall()
        return [Step(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

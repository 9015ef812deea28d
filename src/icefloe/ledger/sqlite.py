"""SQLite ledger (WAL): the embedded default, good for one machine and several processes."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from icefloe.errors import IcefloeError
from icefloe.ledger.base import TRANSITIONS, Event, Ledger, State, Step, event_id
from icefloe.ledger.sqlite_side import SIDE_SCHEMA, SideTables, iter_statements, migrate
from icefloe.ledger.sqlite_views import SqliteViews

__all__ = ["SqliteLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, uri TEXT NOT NULL,
    content_hash TEXT NOT NULL, size INTEGER NOT NULL, pipeline TEXT, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5,
    error TEXT, error_kind TEXT, rows_in INTEGER, rows_out INTEGER, rows_quarantined INTEGER,
    "table" TEXT, snapshot_id INTEGER, landed_at REAL NOT NULL, started_at REAL, committed_at REAL,
    updated_at REAL NOT NULL, next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT, lease_expires_at REAL, stamp TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_runnable ON events(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_object ON events(source, key);
CREATE TABLE IF NOT EXISTS steps (
    event_id TEXT NOT NULL, step TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS steps_event ON steps(event_id);
CREATE INDEX IF NOT EXISTS events_content ON events(content_hash, pipeline);
"""
_COLUMNS = [
    "id", "source", "key", "uri", "content_hash", "size", "pipeline", "state", "attempts",
    "max_attempts", "error", "error_kind", "rows_in", "rows_out", "rows_quarantined", "table",
    "snapshot_id", "landed_at", "started_at", "committed_at", "updated_at", "next_attempt_at",
    "lease_owner", "lease_expires_at", "stamp", "version",
]  # fmt: skip
_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in _COLUMNS) + " FROM events"


def _event(row: tuple[Any, ...]) -> Event:
    return Event(**dict(zip(_COLUMNS, row, strict=True)))


# rowid first: the landing sequence that `page` pages by
_SELECT_SEQ = _SELECT.replace("SELECT ", "SELECT rowid, ", 1)


def _sequenced(row: tuple[Any, ...]) -> Event:
    ev = _event(row[1:])
    ev.seq = int(row[0])
    return ev


def _check(old: str, new: State) -> None:
    if new not in TRANSITIONS[old]:
        raise IcefloeError(f"illegal event transition {old} -> {new}")


class SqliteLedger(SqliteViews, SideTables, Ledger):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._last_landed = 0.0
        with self._tx():
            for statement in iter_statements(_SCHEMA + SIDE_SCHEMA):
                self._db.execute(statement)
            migrate(self._db)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two processes leasing at once
        # serialise instead of both reading the same runnable rows.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def land(
        self,
        *,
        source: str,
        key: str,
        uri: str,
        content_hash: str,
        size: int,
        pipelines: list[str],
        max_attempts: dict[str, int] | None = None,
        stamp: str = "",
    ) -> list[Event]:
        # landings in one process get strictly increasing times: lease order is landing order
        now = self._last_landed = max(time.time(), self._last_landed + 1e-6)
        created = []
        with self._tx() as db:
            current, version = self.current_version(db, source, key)
            if current is not None and current != content_hash:
                version += 1  # new bytes, or bytes of an earlier version again: a new version
            elif current is not None and self._replaced_unseen(db, source, key, version):
                # its event was discarded because the object changed, and the change was written
                # back before it landed: these bytes are a new landing, not a re-delivery
                version += 1
            self.set_version(db, source, key, content_hash, version)
            targets: list[str | None] = list(pipelines) or [None]
            for pipeline in targets:
                state: State = "queued" if pipeline else "unrouted"
                ev = Event(
                    id=event_id(source, key, content_hash, pipeline, version), source=source, key=key, uri=uri,
                    content_hash=content_hash, size=size, pipeline=pipeline, state=state,
                    max_attempts=(max_attempts or {}).get(pipeline or "", 5), landed_at=now, updated_at=now,
                    stamp=stamp, version=version,
                )  # fmt: skip
                values = [getattr(ev, c) for c in _COLUMNS]
                cur = db.execute(
                    f"INSERT OR IGNORE INTO events ({', '.join(repr(c) for c in _COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                    values,
                )
                if cur.rowcount:
                    created.append(ev)
                    db.execute(
                        "INSERT INTO steps VALUES (?, 'landed', ?, ?, ?)",
                        (ev.id, now, now, json.dumps({"size": size, "uri": uri})),
                    )
        return created

    @staticmethod
    def _replaced_unseen(db: sqlite3.Connection, source: str, key: str, version: int) -> bool:
        """An event of this version was discarded because its object was replaced before it ran."""
        row = db.execute(
            "SELECT 1 FROM events WHERE source=? AND key=? AND version=? AND state='discarded'"
            " AND error_kind='Superseded' LIMIT 1",
            (source, key, version),
        ).fetchone()
        return row is not None

    def object_events(self, source: str, key: str) -> list[Event]:
        with self._lock:
            current, version = self.current_version(self._db, source, key)
            rows = self._db.execute(
                f"{_SELECT} WHERE source=? AND key=? AND content_hash=? AND version=? ORDER BY landed_at, id",
                (source, key, current, version),
            ).fetchall()
        return [_event(r) for r in rows]

    def has_committed_version(self, source: str, key: str, pipeline: str, *, other_than: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed' AND id!=? LIMIT 1",
                (source, key, pipeline, other_than),
            ).fetchone()
        return row is not None

    def revive_duplicates(self, replacing: Event, present: Callable[[str, str], bool] | None = None) -> list[Event]:
        now = self._last_landed = max(time.time(), self._last_landed + 1e-6)
        created: list[Event] = []
        with self._tx() as db:
            row = db.execute(
                "SELECT content_hash FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed'"
                " AND version < ? ORDER BY version DESC LIMIT 1",
                (replacing.source, replacing.key, replacing.pipeline, replacing.version),
            ).fetchone()
            if row is None or row[0] == replacing.content_hash:
                return []
            skipped = db.execute(
                f"{_SELECT} WHERE pipeline=? AND content_hash=? AND state='discarded' AND error_kind='Duplicate'"
                " AND version = COALESCE((SELECT o.version FROM objects o WHERE o.source = events.source"
                " AND o.key = events.key), version) ORDER BY landed_at, id",
                (replacing.pipeline, row[0]),
            ).fetchall()
            for old in (_event(r) for r in skipped):
                if present is not None and not present(old.source, old.key):
                    continue  # deleted since: nothing to load
                version = self.current_version(db, old.source, old.key)[1] + 1
                self.set_version(db, old.source, old.key, old.content_hash, version)
                ev = Event(
                    id=event_id(old.source, old.key, old.content_hash, old.pipeline, version), source=old.source,
                    key=old.key, uri=old.uri, content_hash=old.content_hash, size=old.size, pipeline=old.pipeline,
                    state="queued", max_attempts=old.max_attempts, landed_at=now, updated_at=now, stamp=old.stamp,
                    version=version,
                )  # fmt: skip
                db.execute(
                    f"INSERT OR IGNORE INTO events ({', '.join(repr(c) for c in _COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [getattr(ev, c) for c in _COLUMNS],
                )
                reason = f"{replacing.object_ref} no longer holds these bytes (event {replacing.id} replaced them)"
                detail = {"size": old.size, "uri": old.uri, "reason": reason}
                db.execute("INSERT INTO steps VALUES (?, 'landed', ?, ?, ?)", (ev.id, now, now, json.dumps(detail)))
                created.append(ev)
                now = self._last_landed = now + 1e-6
        return created

    def same_content(self, pipeline: str, content_hash: str, *, before: Event) -> Event | None:
        # only an object's current version counts: bytes its object has since replaced are gone
        # from a replacing table, so loading them again under another name is no duplicate
        sql = (
            f"{_SELECT} WHERE pipeline=? AND content_hash=? AND NOT (source=? AND key=?)"
            " AND state IN ('landed', 'queued', 'running', 'retrying', 'committed')"
            " AND (landed_at < ? OR (landed_at = ? AND id < ?))"
            " AND version = COALESCE((SELECT o.version FROM objects o WHERE o.source = events.source"
            " AND o.key = events.key), version) ORDER BY landed_at, id LIMIT 1"
        )
        params = (pipeline, content_hash, before.source, before.key, before.landed_at, before.landed_at, before.id)
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return _event(row) if row else None

    def lease(
        self,
        owner: str,
        *,
        limit: int,
        ttl: float,
        pipelines: Iterable[str] | None = None,
        ordered: Iterable[str] = (),
        groups: Mapping[str, str] | None = None,
        ordered_by_key: Iterable[str] = (),
    ) -> list[Event]:
        now = time.time()
        where = (
            "((state IN ('queued', 'retrying') AND next_attempt_at <= ?) "
            "OR (state = 'running' AND lease_expires_at < ?))"
        )
        params: list[Any] = [now, now]
        strict = list(ordered)
        if strict:
            same, same_params = _same_group(strict, groups or {})
            where += (
                f" AND NOT (pipeline IN ({', '.join('?' * len(strict))}) AND EXISTS (SELECT 1 FROM events o"
                f" WHERE {same} AND o.landed_at < events.landed_at AND"
                " (o.state = 'retrying' OR (o.state = 'running' AND o.lease_owner != ? AND o.lease_expires_at >= ?))))"
            )
            params += [*strict, *same_params, owner, now]
        if pipelines is not None:
            names = list(pipelines)
            where += f" AND pipeline IN ({', '.join('?' * len(names))})"
            params += names
        by_key = list(ordered_by_key)
        # what may hold an append pipeline's newer version back: usually nothing, and then the
        # lease need not look at every queued event's older versions
        blockers = (
            f"SELECT 1 FROM events o WHERE o.pipeline IN ({', '.join('?' * len(by_key))}) AND"
            " (o.state = 'retrying' OR (o.state = 'running' AND o.lease_owner != ? AND o.lease_expires_at >= ?))"
        )
        with self._tx() as db:
            if by_key and db.execute(blockers + " LIMIT 1", [*by_key, owner, now]).fetchone():
                where += (
                    f" AND NOT (pipeline IN ({', '.join('?' * len(by_key))}) AND EXISTS ({blockers}"
                    " AND o.source = events.source AND o.key = events.key AND o.pipeline = events.pipeline"
                    " AND o.landed_at < events.landed_at))"
                )
                params += [*by_key, *by_key, owner, now]
            rows = db.execute(f"{_SELECT} WHERE {where} ORDER BY landed_at, id LIMIT ?", [*params, limit]).fetchall()
            events = [_event(r) for r in rows]
            for ev in events:
                db.execute(
                    "UPDATE events SET state='running', attempts=attempts+1, lease_owner=?, lease_expires_at=?,"
                    " started_at=COALESCE(started_at, ?), updated_at=? WHERE id=?",
                    (owner, now + ttl, now, now, ev.id),
                )
                ev.attempts += 1
                ev.state, ev.lease_owner, ev.lease_expires_at = "running", owner, now + ttl
                db.execute(
                    "INSERT INTO steps VALUES (?, 'leased', ?, ?, ?)",
                    (ev.id, now, now, json.dumps({"owner": owner, "attempt": ev.attempts})),
                )
        return events

    def renew(self, ids: list[str], owner: str, ttl: float) -> None:
        expires = time.time() + ttl
        with self._tx() as db:
            db.executemany(
                "UPDATE events SET lease_expires_at=? WHERE id=? AND lease_owner=? AND state='running'",
                [(expires, i, owner) for i in ids],
            )

    def release(self, ids: list[str], owner: str) -> None:
        now = time.time()
        with self._tx() as db:
            for i in ids:
                db.execute(
                    "UPDATE events SET state='queued', attempts=MAX(attempts-1, 0), lease_owner=NULL,"
                    " lease_expires_at=NULL, updated_at=? WHERE id=? AND state='running' AND lease_owner=?",
                    (now, i, owner),
                )
                db.execute("INSERT INTO steps VALUES (?, 'released', ?, ?, '{}')", (i, now, now))

    def supersede(self, id: str, reason: str, kind: str = "Superseded") -> None:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state FROM events WHERE id=?", (id,)).fetchone()
            if row is None:
                raise IcefloeError(f"no event {id}")
            _check(row[0], "discarded")
            db.execute(
                "UPDATE events SET state='discarded', error=?, error_kind=?, lease_owner=NULL,"
                " lease_expires_at=NULL, updated_at=? WHERE id=?",
                (reason, kind, now, id),
            )
            step = "superseded" if kind == "Superseded" else kind.lower()
            db.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?)", (id, step, now, now, json.dumps({"reason": reason})))

    def release_dead_owners(self, is_alive: Any) -> int:
        with self._tx() as db:
            owners = [r[0] for r in db.execute("SELECT DISTINCT lease_owner FROM events WHERE state='running'")]
            dead = [o for o in owners if o and not is_alive(o)]
            for owner in dead:
                db.execute("UPDATE events SET lease_expires_at=0 WHERE state='running' AND lease_owner=?", (owner,))
        return len(dead)

    def mark_committed(self, ids: list[str], *, table: str, snapshot_id: int | None, stats: dict[str, dict[str, int]]) -> None:
        now = time.time()
        with self._tx() as db:
            for i in ids:
                row = db.execute("SELECT state FROM events WHERE id=?", (i,)).fetchone()
                if row is None or row[0] == "committed":
                    continue
                _check(row[0], "committed")
                s = stats.get(i, {})
                db.execute(
                    'UPDATE events SET state=\'committed\', "table"=?, snapshot_id=?, committed_at=?, updated_at=?,'
                    " error=NULL, error_kind=NULL, lease_owner=NULL, lease_expires_at=NULL,"
                    " rows_in=COALESCE(?, rows_in), rows_out=COALESCE(?, rows_out),"
                    " rows_quarantined=COALESCE(?, rows_quarantined) WHERE id=?",
                    (table, snapshot_id, now, now, s.get("rows_in"), s.get("rows_out"), s.get("rows_quarantined"), i),
                )
                db.execute(
                    "INSERT INTO steps VALUES (?, 'committed', ?, ?, ?)",
                    (i, now, now, json.dumps({"table": table, "snapshot_id": snapshot_id})),
                )

    def mark_failed(self, id: str, *, error: str, kind: str, transient: bool, backoff: float, max_backoff: float) -> State:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state, attempts, max_attempts FROM events WHERE id=?", (id,)).fetchone()
            if row is None:
                raise IcefloeError(f"no event {id}")
            state, attempts, max_attempts = row
            new: State = "retrying" if transient and attempts < max_attempts else "dead"
            _check(state, new)
            # full jitter keeps a crowd of failed events from retrying in lock-step
            delay = random.uniform(0, min(max_backoff, backoff * 2 ** max(attempts - 1, 0))) if new == "retrying" else 0
            db.execute(
                "UPDATE events SET state=?, error=?, error_kind=?, next_attempt_at=?, updated_at=?,"
                " lease_owner=NULL, lease_expires_at=NULL WHERE id=?",
                (new, error, kind, now + delay, now, id),
            )
            db.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?)",
                (id, new, now, now, json.dumps({"error": error, "kind": kind, "retry_in": round(delay, 3)})),
            )
        return new

    def _move(self, ids: list[str] | None, from_states: tuple[str, ...], to: State, reset: bool) -> list[str]:
        now = time.time()
        with self._tx() as db:
            marks = ", ".join("?" * len(from_states))
            if ids is None:
                rows = db.execute(f"SELECT id, state FROM events WHERE state IN ({marks})", from_states).fetchall()
            else:
                rows = [db.execute("SELECT id, state FROM events WHERE id=?", (i,)).fetchone() for i in ids]
                missing = [i for i, r in zip(ids, rows, strict=True) if r is None]
                if missing:
                    raise IcefloeError(f"no such event: {', '.join(missing)}")
                bad = [r for r in rows if r[1] not in from_states]
                if bad:
                    raise IcefloeError(f"event {bad[0][0]} is {bad[0][1]}, not {' or '.join(from_states)}")
            extra = ", attempts=0, next_attempt_at=0, error=NULL, error_kind=NULL" if reset else ""
            for i, _ in rows:
                db.execute(f"UPDATE events SET state=?, updated_at=?{extra} WHERE id=?", (to, now, i))
                db.execute("INSERT INTO steps VALUES (?, ?, ?, ?, '{}')", (i, "replayed" if reset else to, now, now))
        return [r[0] for r in rows]

    def replay(self, ids: list[str] | None) -> list[str]:
        return self._move(ids, ("dead",), "queued", reset=True)

    def discard(self, ids: list[str] | None) -> list[str]:
        return self._move(ids, ("dead",), "discarded", reset=False)

    def requeue_unrouted(self, object_ids: list[tuple[str, str]]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM events WHERE state='unrouted' AND source=? AND key=?", object_ids)

    def get(self, id: str) -> Event | None:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE id=?", (id,)).fetchone()
        return _event(row) if row else None

    def find(self, prefix: str) -> Event | None:
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE id LIKE ? LIMIT 2", (prefix + "%",)).fetchall()
        if len(rows) > 1:
            raise IcefloeError(f"event id prefix {prefix!r} is ambiguous")
        return _event(rows[0]) if rows else None

    def events(
        self, *, states: Iterable[str] | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[Event]:
        clauses, params = [], []
        if states is not None:
            names = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(names))})")
            params += names
        if pipeline is not None:
            clauses.append("pipeline=?")
            params.append(pipeline)
        sql = _SELECT_SEQ + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY landed_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [_sequenced(r) for r in self._db.execute(sql, params).fetchall()]

    def page(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        # rowid is the landing sequence here (events are only inserted, in landing order)
        clauses: list[str] = ["rowid > ?"]
        params: list[Any] = [after or 0]
        if states is not None:
            names = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(names))})")
            params += names
        for column, value in (("pipeline", pipeline), ("source", source)):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        sql = _SELECT_SEQ + " WHERE " + " AND ".join(clauses) + f" ORDER BY rowid LIMIT {int(limit)}"
        with self._lock:
            return [_sequenced(r) for r in self._db.execute(sql, params).fetchall()]

    def record_step(self, event_ids: list[str], step: str, started_at: float, ended_at: float, **detail: Any) -> None:
        payload = json.dumps(detail, default=str)
        with self._tx() as db:
            db.executemany("INSERT INTO steps VALUES (?, ?, ?, ?, ?)", [(i, step, started_at, ended_at, payload) for i in event_ids])

    def steps(self, id: str) -> list[Step]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, step, started_at, ended_at, detail FROM steps WHERE event_id=? ORDER BY started_at, rowid",
                (id,),
            ).fetchall()
        return [Step(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def pending_count(self, pipelines: Iterable[str] | None = None) -> int:
        sql = "SELECT COUNT(*) FROM events WHERE state IN ('landed', 'queued', 'running', 'retrying')"
        params: list[Any] = []
        if pipelines is not None:
            names = list(pipelines)
            sql += f" AND pipeline IN ({', '.join('?' * len(names))})"
            params = names
        with self._lock:
            return int(self._db.execute(sql, params).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _same_group(ordered: list[str], groups: Mapping[str, str]) -> tuple[str, list[str]]:
    """SQL saying event `o` is in the order group of `events`: its pipeline, or an ordered pipeline
    of the same group."""
    members: dict[str, list[str]] = {}
    for name in ordered:
        if name in groups:
            members.setdefault(groups[name], []).append(name)
    clauses, params = ["o.pipeline = events.pipeline"], []
    for names in members.values():
        marks = ", ".join("?" * len(names))
        clauses.append(f"(events.pipeline IN ({marks}) AND o.pipeline IN ({marks}))")
        params += [*names, *names]
    return "(" + " OR ".join(clauses) + ")", params

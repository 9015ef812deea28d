"""The ledger's policy and SQL, written once for every SQL backend.

The state machine's checks, backoff and fencing rule (ledger/machine.py) and the ordering rules
of `lease` (ledger/ordering.py) are applied here, with the version rules of `land`; a backend
(ledger/sqlite.py, ledger/postgres.py) only connects, names its `Dialect` and says which errors
mean the connection is gone.

Why DB-API with a thin dialect layer and not SQLAlchemy Core: the two databases already agree
on nearly all of this SQL (`ON CONFLICT`, `RETURNING`, `CASE`, window functions), so the dialect
is six small strings (ledger/dialect.py); the hot paths (land, lease, mark_committed) stay one
prepared statement each with no expression compilation per call; and the embedded default needs
no new dependency. Times come from the database clock (`Dialect.now`), never the client's, so
workers on several hosts agree when a lease expires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from icefloe.errors import IcefloeError, LeaseLostError
from icefloe.ledger import machine
from icefloe.ledger.machine import State, check
from icefloe.ledger.model import Event, event_id
from icefloe.ledger.ordering import order_filter
from icefloe.ledger.sql_side import COLUMNS, SELECT, event_row
from icefloe.ledger.sql_views import SqlReads

__all__ = ["SqlLedger"]

_INSERT = (
    "INSERT INTO events (" + ", ".join(f'"{c}"' for c in COLUMNS) + ") VALUES (" + ", ".join("?" * len(COLUMNS)) + ") ON CONFLICT DO NOTHING"
)
_STEP = "INSERT INTO steps (event_id, step, started_at, ended_at, detail) VALUES (?, ?, ?, ?, ?)"


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


class SqlLedger(SqlReads):
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
        traceparent: str | None = None,
    ) -> list[Event]:
        created = []
        with self._tx() as db:
            # landings in one process get strictly increasing times, as the engine orders by them
            now = self._last_landed = max(self._now(db), self._last_landed + 1e-6)
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
                    stamp=stamp, version=version, seq=int(db.execute(self.dialect.next_seq).fetchone()[0]),
                    traceparent=traceparent,
                )  # fmt: skip
                if db.execute(_INSERT, [getattr(ev, c) for c in COLUMNS]).rowcount:
                    created.append(ev)
                    self._tally.move(source, pipeline, None, state)
                    db.execute(_STEP, (ev.id, "landed", now, now, json.dumps({"size": size, "uri": uri})))
            if created:
                # no bytes recorded for the key: none of its events is in the ledger
                self._tally.landed(source, now, new_object=current is None)
        return created

    @staticmethod
    def _replaced_unseen(db: Any, source: str, key: str, version: int) -> bool:
        """An event of this version was discarded because its object was replaced (or deleted)
        before it ran: the same bytes landing again are a new landing."""
        row = db.execute(
            "SELECT 1 FROM events WHERE source=? AND key=? AND version=? AND state='discarded'"
            " AND error_kind IN ('Superseded', 'Deleted') LIMIT 1",
            (source, key, version),
        ).fetchone()
        return row is not None

    def object_events(self, source: str, key: str) -> list[Event]:
        with self._read() as db:
            current, version = self.current_version(db, source, key)
            rows = db.execute(
                f"{SELECT} WHERE source=? AND key=? AND content_hash=? AND version=? ORDER BY seq",
                (source, key, current, version),
            ).fetchall()
        return [event_row(r) for r in rows]

    def has_committed_version(self, source: str, key: str, pipeline: str, *, other_than: str) -> bool:
        with self._read() as db:
            row = db.execute(
                "SELECT 1 FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed' AND id!=? LIMIT 1",
                (source, key, pipeline, other_than),
            ).fetchone()
        return row is not None

    def revive_duplicates(self, replacing: Event, present: Callable[[str, str], bool] | None = None) -> list[Event]:
        created: list[Event] = []
        with self._tx() as db:
            now = self._last_landed = max(self._now(db), self._last_landed + 1e-6)
            row = db.execute(
                "SELECT content_hash FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed'"
                " AND version < ? ORDER BY version DESC LIMIT 1",
                (replacing.source, replacing.key, replacing.pipeline, replacing.version),
            ).fetchone()
            if row is None or row[0] == replacing.content_hash:
                return []
            skipped = db.execute(
                f"{SELECT} WHERE pipeline=? AND content_hash=? AND state='discarded' AND error_kind='Duplicate'"
                " AND version = COALESCE((SELECT o.version FROM objects o WHERE o.source = events.source"
                " AND o.key = events.key), version) ORDER BY seq",
                (replacing.pipeline, row[0]),
            ).fetchall()
            for old in (event_row(r) for r in skipped):
                if present is not None and not present(old.source, old.key):
                    continue  # deleted since: nothing to load
                version = self.current_version(db, old.source, old.key)[1] + 1
                self.set_version(db, old.source, old.key, old.content_hash, version)
                ev = Event(
                    id=event_id(old.source, old.key, old.content_hash, old.pipeline, version), source=old.source,
                    key=old.key, uri=old.uri, content_hash=old.content_hash, size=old.size, pipeline=old.pipeline,
                    state="queued", max_attempts=old.max_attempts, landed_at=now, updated_at=now, stamp=old.stamp,
                    version=version, seq=int(db.execute(self.dialect.next_seq).fetchone()[0]),
                    traceparent=old.traceparent,
                )  # fmt: skip
                if db.execute(_INSERT, [getattr(ev, c) for c in COLUMNS]).rowcount:
                    self._tally.move(ev.source, ev.pipeline, None, "queued")
                    self._tally.landed(ev.source, now, new_object=False)
                reason = f"{replacing.object_ref} no longer holds these bytes (event {replacing.id} replaced them)"
                detail = {"size": old.size, "uri": old.uri, "reason": reason}
                db.execute(_STEP, (ev.id, "landed", now, now, json.dumps(detail)))
                created.append(ev)
                now = self._last_landed = now + 1e-6
        return created

    def same_content(self, pipeline: str, content_hash: str, *, before: Event) -> Event | None:
        # only an object's current version counts: bytes its object has since replaced are gone
        # from a replacing table, so loading them again under another name is no duplicate
        sql = (
            f"{SELECT} WHERE pipeline=? AND content_hash=? AND NOT (source=? AND key=?)"
            " AND state IN ('landed', 'queued', 'running', 'retrying', 'committed') AND seq < ?"
            " AND version = COALESCE((SELECT o.version FROM objects o WHERE o.source = events.source"
            " AND o.key = events.key), version) ORDER BY seq LIMIT 1"
        )
        with self._read() as db:
            row = db.execute(sql, (pipeline, content_hash, before.source, before.key, before.seq)).fetchone()
        return event_row(row) if row else None

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
        strict, by_key = list(ordered), list(ordered_by_key)
        with self._tx() as db:
            if (strict or by_key) and self.dialect.serialize_lease:
                # the ordering rules read other events' states: leases that apply them take turns
                db.execute(self.dialect.serialize_lease)
            now = self._now(db)
            where = f"{self.dialect.lease_scope}((state IN ('queued', 'retrying') AND next_attempt_at <= ?) OR (state = 'running' AND lease_expires_at < ?))"
            params: list[Any] = [now, now]
            if pipelines is not None:
                names = list(pipelines)
                if not names:
                    return []
                where += f" AND pipeline IN ({_marks(names)})"
                params += names
            held, held_params = order_filter(db, strict, by_key, groups or {}, owner, now)
            where, params = where + held, params + held_params
            sql = f"{SELECT} WHERE {where} ORDER BY seq LIMIT ?{self.dialect.lease_lock}"
            events = [event_row(r) for r in db.execute(sql, [*params, limit]).fetchall()]
            if not events:
                return []
            expires = now + ttl
            db.executemany(
                "UPDATE events SET state='running', attempts=attempts+1, epoch=epoch+1, lease_owner=?,"
                " lease_expires_at=?, started_at=COALESCE(started_at, ?), updated_at=? WHERE id=?",
                [(owner, expires, now, now, ev.id) for ev in events],
            )
            for ev in events:
                self._tally.move(ev.source, ev.pipeline, ev.state, "running")
                ev.attempts, ev.epoch = ev.attempts + 1, ev.epoch + 1
                ev.state, ev.lease_owner, ev.lease_expires_at, ev.updated_at = "running", owner, expires, now
                ev.started_at = ev.started_at if ev.started_at is not None else now
            db.executemany(
                _STEP, [(ev.id, "leased", now, now, json.dumps({"owner": owner, "attempt": ev.attempts, "epoch": ev.epoch})) for ev in events]
            )
        return events

    def renew(self, ids: list[str], owner: str, ttl: float, *, epochs: Mapping[str, int] | None = None) -> None:
        lost = []
        with self._tx() as db:
            expires = self._now(db) + ttl
            sql = "UPDATE events SET lease_expires_at=? WHERE id=? AND lease_owner=? AND state='running'"
            if epochs is None:
                db.executemany(sql, [(expires, i, owner) for i in ids])
            else:
                lost = [i for i in sorted(ids) if not db.execute(sql + " AND epoch=?", (expires, i, owner, epochs[i])).rowcount]
        if lost:
            raise LeaseLostError(lost)

    def release(self, ids: list[str], owner: str, *, epochs: Mapping[str, int] | None = None) -> None:
        lost = []
        with self._tx() as db:
            now = self._now(db)
            for i in sorted(ids):  # one row order for every writer: no deadlocks between them
                sql = (
                    "UPDATE events SET state='queued', attempts=CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,"
                    " lease_owner=NULL, lease_expires_at=NULL, updated_at=? WHERE id=? AND state='running' AND lease_owner=?"
                )
                returning = " RETURNING source, pipeline"
                params: tuple[Any, ...] = (now, i, owner)
                if epochs is not None:
                    sql, params = sql + " AND epoch=?", (*params, epochs[i])
                if (moved := db.execute(sql + returning, params).fetchone()) is not None:
                    self._tally.move(moved[0], moved[1], "running", "queued")
                    db.execute(_STEP, (i, "released", now, now, "{}"))
                elif epochs is not None:
                    lost.append(i)
        if lost:
            raise LeaseLostError(lost)

    def supersede(self, id: str, reason: str, kind: str = "Superseded", *, epoch: int | None = None) -> None:
        with self._tx() as db:
            now = self._now(db)
            row = db.execute(f"SELECT state, epoch, source, pipeline FROM events WHERE id=?{self.dialect.row_lock}", (id,)).fetchone()
            if row is None:
                raise IcefloeError(f"no event {id}")
            if not machine.held(row[0], row[1], epoch):
                raise LeaseLostError([id])
            check(row[0], "discarded")
            self._tally.move(row[2], row[3], row[0], "discarded")
            db.execute(
                "UPDATE events SET state='discarded', error=?, error_kind=?, lease_owner=NULL,"
                " lease_expires_at=NULL, updated_at=? WHERE id=?",
                (reason, kind, now, id),
            )
            step = "superseded" if kind == "Superseded" else kind.lower()
            db.execute(_STEP, (id, step, now, now, json.dumps({"reason": reason})))

    def release_dead_owners(self, is_alive: Any) -> int:
        with self._tx() as db:
            owners = [r[0] for r in db.execute("SELECT DISTINCT lease_owner FROM events WHERE state='running'").fetchall()]
            dead = [o for o in owners if o and not is_alive(o)]
            for owner in dead:
                db.execute("UPDATE events SET lease_expires_at=0 WHERE state='running' AND lease_owner=?", (owner,))
        return len(dead)

    def mark_committed(
        self,
        ids: list[str],
        *,
        table: str,
        snapshot_id: int | None,
        stats: dict[str, dict[str, int]],
        epochs: Mapping[str, int] | None = None,
    ) -> None:
        lost = []
        with self._tx() as db:
            now = self._now(db)
            for i in sorted(ids):  # one row order for every writer: no deadlocks between them
                row = db.execute(
                    f"SELECT state, epoch, source, pipeline, rows_quarantined FROM events WHERE id=?{self.dialect.row_lock}", (i,)
                ).fetchone()
                if row is None:
                    continue
                fence = None if epochs is None else epochs[i]
                if row[0] == "committed":
                    if fence is not None and int(row[1]) != fence:
                        lost.append(i)  # another lease committed it: its record stands
                    continue
                if not machine.held(row[0], row[1], fence):
                    lost.append(i)
                    continue
                check(row[0], "committed")
                s = stats.get(i, {})
                # the epoch in the WHERE makes the check and the write one step on PostgreSQL too
                if not db.execute(
                    'UPDATE events SET state=\'committed\', "table"=?, snapshot_id=?, committed_at=?, updated_at=?,'
                    " error=NULL, error_kind=NULL, lease_owner=NULL, lease_expires_at=NULL,"
                    " rows_in=COALESCE(?, rows_in), rows_out=COALESCE(?, rows_out),"
                    " rows_quarantined=COALESCE(?, rows_quarantined) WHERE id=? AND epoch=?",
                    (table, snapshot_id, now, now, s.get("rows_in"), s.get("rows_out"), s.get("rows_quarantined"), i, row[1]),
                ).rowcount:
                    lost.append(i)
                    continue
                bad = s.get("rows_quarantined")
                bad = row[4] if bad is None else bad
                self._tally.move(row[2], row[3], row[0], "committed", quarantined=int(bad or 0), committed_at=now)
                db.execute(_STEP, (i, "committed", now, now, json.dumps({"table": table, "snapshot_id": snapshot_id})))
        if lost:
            raise LeaseLostError(lost)

    def mark_failed(
        self, id: str, *, error: str, kind: str, transient: bool, backoff: float, max_backoff: float, epoch: int | None = None
    ) -> State:
        with self._tx() as db:
            now = self._now(db)
            row = db.execute(
                f"SELECT state, epoch, attempts, max_attempts, source, pipeline FROM events WHERE id=?{self.dialect.row_lock}", (id,)
            ).fetchone()
            if row is None:
                raise IcefloeError(f"no event {id}")
            if not machine.held(row[0], row[1], epoch):
                raise LeaseLostError([id])
            state, held, attempts, max_attempts, source, pipeline = row
            new: State = "retrying" if transient and attempts < max_attempts else "dead"
            check(state, new)
            self._tally.move(source, pipeline, state, new)
            delay = machine.retry_delay(attempts, backoff, max_backoff) if new == "retrying" else 0
            db.execute(
                "UPDATE events SET state=?, error=?, error_kind=?, next_attempt_at=?, updated_at=?,"
                " lease_owner=NULL, lease_expires_at=NULL WHERE id=? AND epoch=?",
                (new, error, kind, now + delay, now, id, held),
            )
            db.execute(_STEP, (id, new, now, now, json.dumps({"error": error, "kind": kind, "retry_in": round(delay, 3)})))
        return new

    def _move(self, ids: list[str] | None, from_states: tuple[str, ...], to: State, reset: bool) -> list[str]:
        with self._tx() as db:
            now = self._now(db)
            marks = _marks(list(from_states))
            if ids is None:
                rows = db.execute(f"SELECT id, state, source, pipeline FROM events WHERE state IN ({marks}) ORDER BY seq", from_states).fetchall()
            else:
                rows = [db.execute("SELECT id, state, source, pipeline FROM events WHERE id=?", (i,)).fetchone() for i in ids]
                missing = [i for i, r in zip(ids, rows, strict=True) if r is None]
                if missing:
                    raise IcefloeError(f"no such event: {', '.join(missing)}")
                bad = [r for r in rows if r[1] not in from_states]
                if bad:
                    raise IcefloeError(f"event {bad[0][0]} is {bad[0][1]}, not {' or '.join(from_states)}")
            extra = ", attempts=0, next_attempt_at=0, error=NULL, error_kind=NULL" if reset else ""
            for i, old, source, pipeline in rows:
                self._tally.move(source, pipeline, old, to)
                db.execute(f"UPDATE events SET state=?, updated_at=?{extra} WHERE id=?", (to, now, i))
                db.execute(_STEP, (i, "replayed" if reset else to, now, now, "{}"))
        return [r[0] for r in rows]

    def replay(self, ids: list[str] | None) -> list[str]:
        return self._move(ids, ("dead",), "queued", reset=True)

    def discard(self, ids: list[str] | None) -> list[str]:
        return self._move(ids, ("dead",), "discarded", reset=False)

    def requeue_unrouted(self, object_ids: list[tuple[str, str]]) -> None:
        with self._tx() as db:
            for source, key in object_ids:
                gone = db.execute("DELETE FROM events WHERE state='unrouted' AND source=? AND key=? RETURNING pipeline", (source, key)).fetchall()
                for (pipeline,) in gone:
                    self._tally.move(source, pipeline, "unrouted", None)
                if gone and db.execute("SELECT 1 FROM events WHERE source=? AND key=? LIMIT 1", (source, key)).fetchone() is None:
                    # no event of it is left: its bytes are forgotten too, so landing it again
                    # counts it as an object again (`land` counts a key with no bytes recorded)
                    self._tally.forgot(source)
                    db.execute("UPDATE objects SET content_hash=NULL, version=NULL WHERE source=? AND key=?", (source, key))


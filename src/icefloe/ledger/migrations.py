"""Numbered schema migrations, applied when a ledger opens (or by `icefloe ledger upgrade`).

`schema_version` holds one row per applied migration. Opening applies the missing ones inside
one transaction that first takes the database's write lock (SQLite BEGIN IMMEDIATE, a
PostgreSQL advisory lock), so two processes opening at once apply each migration once.
Every step is idempotent on the layouts it may meet: migration 1 also brings the ledgers older
icefloe versions wrote without `schema_version` (before `stamp`, before `version`) to the
818dcae layout, keeping every row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from icefloe.errors import LedgerVersionError
from icefloe.ledger.dialect import DB, Dialect

__all__ = ["LATEST", "MIGRATIONS", "PENDING", "Migration", "SchemaStatus", "apply", "recount", "status"]

_BASELINE = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, uri TEXT NOT NULL,
    content_hash TEXT NOT NULL, size {int} NOT NULL, pipeline TEXT, state TEXT NOT NULL,
    attempts {int} NOT NULL DEFAULT 0, max_attempts {int} NOT NULL DEFAULT 5,
    error TEXT, error_kind TEXT, rows_in {int}, rows_out {int}, rows_quarantined {int},
    "table" TEXT, snapshot_id {int}, landed_at {real} NOT NULL, started_at {real}, committed_at {real},
    updated_at {real} NOT NULL, next_attempt_at {real} NOT NULL DEFAULT 0,
    lease_owner TEXT, lease_expires_at {real}, stamp TEXT NOT NULL DEFAULT '',
    version {int} NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_runnable ON events(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_object ON events(source, key);
CREATE INDEX IF NOT EXISTS events_content ON events(content_hash, pipeline);
CREATE TABLE IF NOT EXISTS steps (
    event_id TEXT NOT NULL, step TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real} NOT NULL,
    detail TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS steps_event ON steps(event_id);
CREATE TABLE IF NOT EXISTS jobs (
    id {id}, kind TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
    owner TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real}, detail TEXT NOT NULL DEFAULT '{{}}', error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(kind, target, state);
CREATE TABLE IF NOT EXISTS objects (
    source TEXT NOT NULL, key TEXT NOT NULL, stamp TEXT NOT NULL, content_hash TEXT, version {int},
    PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS workers (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid {int} NOT NULL, started_at {real} NOT NULL,
    heartbeat_at {real} NOT NULL, stopped_at {real}
)
"""
# the states a lease takes from; the lease's WHERE spells them the same (Dialect.lease_scope)
PENDING = "state IN ('queued', 'retrying', 'running')"
# columns unversioned ledgers may lack (created before `stamp`, before `version`)
_BASELINE_COLUMNS = {
    "events": [("stamp", "TEXT NOT NULL DEFAULT ''"), ("version", "{int} NOT NULL DEFAULT 0")],
    "objects": [("content_hash", "TEXT"), ("version", "{int}")],
}

# landing order was (landed_at, id) before the sequence: number the old events that way
_NUMBER_EVENTS = (
    "UPDATE events SET seq = (SELECT n FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY landed_at, id) AS n"
    " FROM events) numbered WHERE numbered.id = events.id)"
)
_SEQ_SQLITE = """
ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
{number};
CREATE TABLE ledger_sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO ledger_sequences SELECT 'events', COALESCE(MAX(seq), 0) FROM events;
CREATE INDEX events_seq ON events(seq);
CREATE TABLE steps_numbered (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, step TEXT NOT NULL, started_at REAL NOT NULL,
    ended_at REAL NOT NULL, detail TEXT NOT NULL DEFAULT '{{}}'
);
INSERT INTO steps_numbered SELECT rowid, event_id, step, started_at, ended_at, detail FROM steps ORDER BY rowid;
DROP TABLE steps;
ALTER TABLE steps_numbered RENAME TO steps;
CREATE INDEX steps_event ON steps(event_id)
""".format(number=_NUMBER_EVENTS)
_SEQ_POSTGRES = f"""
ALTER TABLE events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
{_NUMBER_EVENTS};
CREATE SEQUENCE events_seq;
SELECT setval('events_seq', GREATEST(COALESCE(MAX(seq), 0), 1), MAX(seq) IS NOT NULL) FROM events;
CREATE INDEX events_seq_idx ON events(seq);
ALTER TABLE steps ADD COLUMN id BIGSERIAL PRIMARY KEY
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    run: Callable[[DB, Dialect], None]


def _statements(sql: str) -> list[str]:
    return [s for s in sql.split(";\n") if s.strip()]


def _columns(db: DB, dialect: Dialect, table: str) -> set[str]:
    if dialect.name == "sqlite":
        return {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
    rows = db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema()", (table,)).fetchall()
    return {r[0] for r in rows}


def _baseline(db: DB, dialect: Dialect) -> None:
    for statement in _statements(dialect.ddl(_BASELINE)):
        db.execute(statement)
    for table, columns in _BASELINE_COLUMNS.items():
        have = _columns(db, dialect, table)
        for name, decl in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {dialect.ddl(decl)}")


def _sequence_and_epochs(db: DB, dialect: Dialect) -> None:
    for statement in _statements(_SEQ_SQLITE if dialect.name == "sqlite" else _SEQ_POSTGRES):
        db.execute(statement)


def _pending_index(db: DB, dialect: Dialect) -> None:
    # the lease reads pending events in landing order: an index of those alone keeps it from
    # walking every committed event's seq (PostgreSQL's planner chose that on a 20,000-event
    # table, 16 ms a lease and growing)
    if dialect.name == "postgresql":
        db.execute(f"CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE {PENDING}")
        # every event row is rewritten a few times (queued, running, committed): the lease scans
        # its dead versions until vacuum removes them, so vacuum this table early, not at 20%
        db.execute(
            "ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)"
        )


_IDEMPOTENCY = """
CREATE TABLE IF NOT EXISTS idempotency (
    principal TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, fingerprint TEXT,
    status {int}, response TEXT, claimed_at {real} NOT NULL, expires_at {real} NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency(expires_at)
"""


def _idempotency(db: DB, dialect: Dialect) -> None:
    # the HTTP API's Idempotency-Key answers (web/api.py): kept where every API host sees them
    for statement in _statements(dialect.ddl(_IDEMPOTENCY)):
        db.execute(statement)
def _trace_and_gauges(db: DB, dialect: Dialect) -> None:
    # the W3C traceparent of the event's landing: every worker's spans for the event join it
    if "traceparent" not in _columns(db, dialect, "events"):
        db.execute("ALTER TABLE events ADD COLUMN traceparent TEXT")
    # a /metrics scrape reads the backlog (count, oldest landing per pipeline) and each table's
    # last commit: without these it walks every event (1,000,000 committed ones, say) per scrape
    db.execute("CREATE INDEX IF NOT EXISTS events_backlog ON events(state, pipeline, landed_at)")
    db.execute('CREATE INDEX IF NOT EXISTS events_freshness ON events("table", committed_at)')


def _object_index(db: DB, dialect: Dialect) -> None:
    # an object's lookups (is a version of it committed, which bytes were) name source, key and
    # pipeline with a state; beside migration 5's (state, pipeline, landed_at) index SQLite's
    # planner, which has no statistics, took that one and walked every committed event of the
    # pipeline for each lookup: a commit of N events then cost N times the ledger's size
    db.execute("CREATE INDEX IF NOT EXISTS events_object_pipeline ON events(source, key, pipeline)")


_COUNTS = """
CREATE TABLE IF NOT EXISTS event_counts (
    source TEXT NOT NULL, pipeline TEXT NOT NULL, state TEXT NOT NULL, n {int} NOT NULL DEFAULT 0,
    rows_quarantined {int} NOT NULL DEFAULT 0, last_committed_at {real},
    PRIMARY KEY (source, pipeline, state)
);
CREATE TABLE IF NOT EXISTS source_counts (
    source TEXT PRIMARY KEY, objects {int} NOT NULL DEFAULT 0, last_landed_at {real}
);
CREATE INDEX IF NOT EXISTS events_dead ON events(state, seq) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS events_dead_error ON events(pipeline, updated_at, seq) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS events_running ON events(state, lease_owner, seq) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS events_failed ON events(state, updated_at) WHERE state IN ('retrying', 'dead');
CREATE INDEX IF NOT EXISTS events_landed ON events(landed_at);
CREATE INDEX IF NOT EXISTS events_committed ON events(state, committed_at) WHERE state = 'committed';
CREATE INDEX IF NOT EXISTS events_pending_landed ON events(pipeline, landed_at) WHERE state IN ('landed', 'queued', 'running', 'retrying')
"""
# What the overview reads besides the counters, each a range of an index: the dead-letter pages
# (dead events in landing order: events_dead), each pipeline's last error (events_dead_error), the
# events held per worker (events_running), the last hour's landings, commits and failures
# (events_landed, events_committed, events_failed). Partial where only a few states are read: they
# cost a write only when an event enters or leaves those states. State comes first in them so
# SQLite's planner (no statistics) prefers them to events_runnable (state=?) and a sort, and they
# serve only queries that write their condition out (sql_views._filters does): a full (state,
# seq) index took the planner away from the object index for lookups naming a state (migration 6).
# events_pending_landed gives each pipeline's oldest pending landing in one seek: beside
# events_landed, PostgreSQL's planner took MIN(landed_at) ... WHERE state = ? AND pipeline = ?
# from events_landed, walking the oldest (committed) landings first. events_committed is keyed
# by state for the same reason: a plain committed_at index was taken for a table's last commit.
# `event_counts.pipeline` is '' for unrouted events: a primary key column cannot be NULL
RECOUNT = [
    "DELETE FROM event_counts",
    "INSERT INTO event_counts (source, pipeline, state, n, rows_quarantined, last_committed_at)"
    " SELECT source, COALESCE(pipeline, ''), state, COUNT(*), COALESCE(SUM(rows_quarantined), 0), MAX(committed_at)"
    " FROM events GROUP BY source, COALESCE(pipeline, ''), state",
    "DELETE FROM source_counts",
    "INSERT INTO source_counts (source, objects, last_landed_at)"
    " SELECT source, COUNT(DISTINCT key), MAX(landed_at) FROM events GROUP BY source",
]


def recount(db: DB) -> None:
    """Count the ledger's events into the counters again, from the events themselves."""
    for statement in RECOUNT:
        db.execute(statement)


def _counters(db: DB, dialect: Dialect) -> None:
    # `status`, the overview and /metrics read counts kept exact by every transition (sql.py),
    # not a GROUP BY over every event: a count of 1,000,000 events took 15 to 30 s. This counts
    # an existing ledger once (the one slow step), and indexes the dead-letter pages' order.
    for statement in _statements(dialect.ddl(_COUNTS)):
        db.execute(statement)
    recount(db)


MIGRATIONS = [
    Migration(1, "baseline: the 818dcae tables (older unversioned ledgers gain stamp and version)", _baseline),
    Migration(2, "landing sequence (events.seq), lease epochs (events.epoch), numbered steps", _sequence_and_epochs),
    Migration(3, "PostgreSQL: index of the pending events in landing order (lease), events vacuumed early", _pending_index),
    Migration(4, "idempotency: the HTTP API's Idempotency-Key claims and stored answers", _idempotency),
    Migration(5, "events.traceparent (one trace per event across workers); indexes for the /metrics gauges", _trace_and_gauges),
    Migration(6, "events_object indexes (source, key, pipeline): object lookups never walk the backlog index", _object_index),
    Migration(7, "event_counts, source_counts: counters kept by every transition; dead events in seq order", _counters),
]
LATEST = MIGRATIONS[-1].version


@dataclass
class SchemaStatus:
    applied: list[tuple[int, str, float]]
    pending: list[Migration]

    @property
    def version(self) -> int:
        return max((v for v, _, _ in self.applied), default=0)


def _version_table(db: DB, dialect: Dialect) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS schema_version (version {dialect.types['int']} PRIMARY KEY,"
        f" description TEXT NOT NULL, applied_at {dialect.types['real']} NOT NULL)"
    )


def _has_versions(db: DB, dialect: Dialect) -> bool:
    if dialect.name == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    else:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_version' AND table_schema = current_schema()"
    return db.execute(sql).fetchone() is not None


def status(db: DB, dialect: Dialect) -> SchemaStatus:
    """Run inside a transaction; reads only (a ledger without versions yet has applied none)."""
    if dialect.migration_lock:
        db.execute(dialect.migration_lock)
    if not _has_versions(db, dialect):
        return SchemaStatus([], list(MIGRATIONS))
    rows = db.execute("SELECT version, description, applied_at FROM schema_version ORDER BY version").fetchall()
    applied = [(int(r[0]), r[1], float(r[2])) for r in rows]
    done = {v for v, _, _ in applied}
    newest = max(done, default=0)
    if newest > LATEST:
        raise LedgerVersionError(
            f"this ledger's schema is version {newest}, newer than this icefloe knows ({LATEST}): "
            "upgrade icefloe (pip install -U icefloe) before opening it"
        )
    return SchemaStatus(applied, [m for m in MIGRATIONS if m.version not in done])


def apply(db: DB, dialect: Dialect) -> list[Migration]:
    """Apply what is pending; run inside a transaction holding the write lock. Returns what ran."""
    pending = status(db, dialect).pending
    if pending:
        _version_table(db, dialect)
    for migration in pending:
        migration.run(db, dialect)
        db.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, time.time()),
        )
    return pending

"""The few things SQLite and PostgreSQL spell differently; everything else in ledger/sql.py is
one SQL text that both run.

The shared SQL is written with `?` placeholders and standard forms both databases accept:
`INSERT ... ON CONFLICT DO NOTHING / DO UPDATE SET x = excluded.x`, `RETURNING`, `CASE`,
`COALESCE`. What is left differs, and is here: the placeholder style, the clock, the landing
sequence, how a lease locks its rows, how a transaction takes the write lock, and column types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Cursor", "DB", "Dialect", "POSTGRES", "SQLITE"]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class DB(Protocol):
    """A DB-API connection as the shared SQL uses it (sqlite3's, or psycopg's behind `_PgConn`)."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    # the database clock as seconds since the epoch (leases and expiry use it, not the client's);
    # None: the database is embedded and its clock is this host's
    now: str | None
    # take the next landing number (a table row on SQLite, a SEQUENCE on PostgreSQL)
    next_seq: str
    # appended to the lease's SELECT: lock the rows taken, skip rows another leaser holds
    lease_lock: str
    # appended to a SELECT of a row the transaction then updates
    row_lock: str
    # run first by a lease that applies the ordering rules (they read other rows' states)
    serialize_lease: str
    # put first in the lease's WHERE: names the partial index of pending events (PostgreSQL)
    lease_scope: str
    # run first by the transaction that checks and applies migrations (two opens take turns)
    migration_lock: str
    # DDL type words, filled into the migrations' `{real}`, `{int}`, `{id}`
    types: dict[str, str]

    def ddl(self, sql: str) -> str:
        return sql.format(**self.types)


# SQLite: one writer at a time (BEGIN IMMEDIATE), so a lease needs no row locks. Its clock is the
# host's (a WAL file is shared only by processes of one host), read in Python: julianday('now')
# has millisecond resolution, and would order a step the engine timed itself before the ledger's.
SQLITE = Dialect(
    name="sqlite",
    now=None,
    next_seq="UPDATE ledger_sequences SET value = value + 1 WHERE name = 'events' RETURNING value",
    lease_lock="",
    row_lock="",
    serialize_lease="",
    # SQLite's planner reads the runnable index and sorts; an index of pending events in seq
    # order is one more to maintain on every state change, and it did not use it
    lease_scope="",
    migration_lock="",
    types={"real": "REAL", "int": "INTEGER", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
)

# PostgreSQL: many writers at once; a lease locks the rows it takes and skips those another
# worker's open lease transaction holds. clock_timestamp() (not now()) so a long transaction
# does not hand out stale times.
POSTGRES = Dialect(
    name="postgresql",
    now="SELECT extract(epoch from clock_timestamp())::float8",
    next_seq="SELECT nextval('events_seq')",
    lease_lock=" FOR UPDATE OF events SKIP LOCKED",
    row_lock=" FOR UPDATE",
    serialize_lease="SELECT pg_advisory_xact_lock(7131001)",
    lease_scope="state IN ('queued', 'retrying', 'running') AND ",
    migration_lock="SELECT pg_advisory_xact_lock(7131000)",
    types={"real": "DOUBLE PRECISION", "int": "BIGINT", "id": "BIGSERIAL PRIMARY KEY"},
)

"""Throwaway PostgreSQL databases for the crash trials and bench/workers.py (psycopg 3, no pytest).

The server is the one the service tests use: 127.0.0.1:5432, trust auth, user postgres. Every run
gets its own `icefloe_bench_<random>` database, dropped afterwards, so runs never see each
other's ledger or catalog rows.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["PG_SERVER", "PgDatabase", "backend_pids", "create_database", "drop_database", "libpq_url", "ports_of", "terminate_sessions", "transactions"]

PG_SERVER = os.environ.get("ICEFLOE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def _admin() -> Any:
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)


@dataclass(frozen=True)
class PgDatabase:
    name: str

    @property
    def url(self) -> str:
        """`postgresql://...`: the form both `ledger:` and `catalog:` accept."""
        return f"{PG_SERVER}/{self.name}"

    @property
    def catalog_url(self) -> str:
        """The SQLAlchemy form pyiceberg's SqlCatalog takes (icefloe accepts it for `catalog:` too)."""
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1)


def create_database(prefix: str = "icefloe_bench", *, synchronous_commit: bool = True) -> PgDatabase:
    """`synchronous_commit=False` sets it off for this database alone (its new sessions): commits
    return before their WAL is flushed, which shows how much of a run waits on that flush."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin() as con:
        con.execute(f'CREATE DATABASE "{name}"')
        if not synchronous_commit:
            con.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return PgDatabase(name)


def drop_database(db: PgDatabase) -> None:
    with _admin() as con:
        con.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')


def terminate_sessions(url: str) -> list[int]:
    """Drop every connection to the database of `url` but this one: what a failover or a DBA's
    kill does to the workers. Returns the client ports of the sessions terminated (to tell whose
    they were: see `ports_of`)."""
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as con:
        rows = con.execute(
            "SELECT client_port, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(port or -1) for port, done in rows if done]


def ports_of(pid: int) -> set[int]:
    """Local TCP ports a process has open (its PostgreSQL sessions among them)."""
    import psutil

    try:
        return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}
    except psutil.Error:
        return set()


def libpq_url(url: str) -> str:
    """`postgresql://...` from SQLAlchemy's `postgresql+psycopg://...` (psycopg takes only the former)."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.split("+")[0] in ("postgresql", "postgres") else url


def transactions(db: PgDatabase) -> int:
    """Transactions committed in `db` so far (each is at least one round trip from a client).
    Backends report their counts when they exit or at most once a second."""
    with _admin() as con:
        row = con.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (db.name,)).fetchone()
    return int(row[0]) if row else 0


def backend_pids(db: PgDatabase) -> list[int]:
    """Server processes serving `db` now (their CPU time is the database's share of the work)."""
    with _admin() as con:
        rows = con.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (db.name,)).fetchall()
    return [int(pid) for (pid,) in rows]

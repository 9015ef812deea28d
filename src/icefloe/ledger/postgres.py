"""PostgreSQL ledger (psycopg 3): many workers on many hosts share one ledger.

Leases lock the rows they take (`FOR UPDATE SKIP LOCKED`), so concurrent workers never wait for
each other's rows nor take the same event; times come from the server clock. A dropped
connection (a restart, `pg_terminate_backend`) surfaces as LedgerUnavailableError, a transient
error, and the next call connects again, so a worker keeps running.
"""

from __future__ import annotations

from typing import Any

from icefloe.errors import ConfigError, NotInstalledError
from icefloe.ledger import redacted
from icefloe.ledger.dialect import DB, POSTGRES, Cursor
from icefloe.ledger.sql import SqlLedger

__all__ = ["PostgresLedger"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the extra is in dev
        raise NotInstalledError("psycopg", "postgres") from exc
    return psycopg


class _PgConn:
    """A psycopg connection speaking the shared SQL's `?` placeholders."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._sql: dict[str, str] = {}

    def _convert(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            # the shared SQL has no literal `?` or `%`: every `?` is a parameter
            found = self._sql[sql] = sql.replace("?", "%s")
        return found

    def execute(self, sql: str, params: Any = None) -> Cursor:
        if params is None or len(params) == 0:
            return self.raw.execute(sql)  # type: ignore[no-any-return]  # no params: sent as written
        return self.raw.execute(self._convert(sql), params)  # type: ignore[no-any-return]

    def executemany(self, sql: str, params: Any) -> None:
        rows = list(params)
        if rows:
            with self.raw.cursor() as cur:
                cur.executemany(self._convert(sql), rows)

    def close(self) -> None:
        self.raw.close()


class PostgresLedger(SqlLedger):
    dialect = POSTGRES

    def __init__(self, uri: str, *, upgrade: bool = True) -> None:
        self.uri = uri
        self.where = redacted(uri)
        self._psycopg = _psycopg()
        super().__init__(upgrade=upgrade)

    def _connect(self) -> DB:
        # autocommit: each read is its own statement; writes open their transaction with BEGIN
        try:
            return _PgConn(self._psycopg.connect(self.uri, autocommit=True, connect_timeout=10))
        except self._psycopg.ProgrammingError as exc:  # libpq could not parse the URI: fix the config
            raise ConfigError(f"ledger {self.where}: {exc}") from exc

    def _lost(self, exc: BaseException) -> bool:
        psycopg = self._psycopg
        if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return False
        raw = getattr(self._db, "raw", None)
        # a deadlock or serialization failure is an OperationalError on a healthy connection
        return raw is None or bool(raw.closed) or bool(raw.broken)

    def _transient(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        return isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure | errors.LockNotAvailable)

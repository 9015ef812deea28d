"""The dashboard's SQL console: `icefloe sql` for someone who holds only a read token.

What a query may do is decided by DuckDB, not by parsing the text: the views of the tables it
names (and the ledger's `icefloe.*`) are made first, with file access still on; then the
connection is locked down, `enable_external_access=false` with only the planned data files
allowed, extensions neither installed nor loaded on their own, and `lock_configuration` so the
query cannot turn any of that back on. The text must be one SELECT (no COPY, ATTACH, SET,
PRAGMA, INSTALL, CREATE), its result is cut at a row limit, and a timer interrupts it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from icefloe.errors import IcefloeError
from icefloe.query.duck import QueryEngine
from icefloe.runtime import Runtime

__all__ = ["ConsoleResult", "ReadOnlyQueryError", "read_only_query"]

ROW_LIMIT = 1000
TIMEOUT = 10.0


class ReadOnlyQueryError(IcefloeError):
    """A console query that is not allowed (not one SELECT) or did not finish in time."""


@dataclass(frozen=True)
class ConsoleResult:
    table: pa.Table
    truncated: bool  # more rows than the limit; only the first `limit` are in `table`


def _one_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"query failed: {exc}") from None
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"one statement at a time, not {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyQueryError(f"only SELECT queries run here, not {kind.name}")


def _lock_down(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    # allowed_paths first: it cannot be set once external access is off and the config locked
    if files:
        con.execute("SET allowed_paths = ?", [files])
    for statement in (
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def read_only_query(rt: Runtime, sql: str, *, limit: int = ROW_LIMIT, timeout: float = TIMEOUT) -> ConsoleResult:
    """Run one SELECT over icefloe's views, read-only, at most `limit` rows, within `timeout` s."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    with QueryEngine(rt) as engine:
        _one_select(engine.con, sql)
        done = threading.Event()
        timed_out = threading.Event()

        def interrupt() -> None:
            # the views are filled by several statements (the ledger a page at a time): keep
            # interrupting until the call returns, so no statement after the deadline runs long
            while not done.wait(0.05):
                timed_out.set()
                engine.con.interrupt()

        timer = threading.Timer(timeout, interrupt)
        timer.daemon = True
        timer.start()
        try:
            engine.prepare(sql)
            _lock_down(engine.con, engine.files)
            reader = engine.con.sql(sql)
            table = reader.limit(limit + 1).to_arrow_table()
        except (duckdb.InterruptException, IcefloeError, duckdb.Error) as exc:
            if timed_out.is_set():
                raise ReadOnlyQueryError(f"the query took longer than {timeout:g} s and was stopped") from None
            if isinstance(exc, IcefloeError):
                raise
            raise ReadOnlyQueryError(f"query failed: {exc}") from None
        finally:
            done.set()
            timer.cancel()
    return ConsoleResult(table.slice(0, limit), table.num_rows > limit)

"""SQL over the lake with DuckDB: Iceberg tables appear as views by name, the ledger as `icefloe.*`.

pyiceberg plans each referenced table (snapshot, manifests, live data files, delete files); DuckDB
reads the planned Parquet files directly, matching columns by Iceberg field id (query/columns.py)
and pushing projection and row-group statistics down. A table whose scan carries delete files, or
whose schema DuckDB cannot map by field id, is read through pyiceberg instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from icefloe.errors import ConfigError, IcefloeError, NotFoundError, StorageUnavailableError
from icefloe.query.columns import field_id_schema, reader_problem
from icefloe.query.messages import missing_table, no_snapshot_at
from icefloe.query.pushdown import Predicate, predicates_by_table, to_iceberg
from icefloe.ledger.base import Event
from icefloe.runtime import Runtime

__all__ = ["EVENTS_PAGE", "QueryEngine", "resolve_as_of"]

# events read from the ledger per page when `icefloe.events` is filled (bounds Python's memory)
EVENTS_PAGE = 2_000


def resolve_as_of(
    table: Table, as_of: str | int | None, *, first_commit_ms: Callable[[], float | None] = lambda: None
) -> int | None:
    """A snapshot id, or an ISO timestamp / epoch millis -> the snapshot current at that time.

    `first_commit_ms` (the ledger's first commit to the table) only sharpens the message when
    no snapshot is left for that time."""
    if as_of is None:
        return None
    text = str(as_of).strip()
    if text.isdigit() and table.snapshot_by_id(int(text)) is not None:
        return int(text)
    if text.isdigit() and len(text) != 13:  # epoch millis have 13 digits until 2286; snapshot ids more
        raise NotFoundError(
            f"{'.'.join(table.name())}: no snapshot {text} (snapshots older than the maintenance policy's"
            " keep_snapshots / keep_for are expired)"
        )
    try:
        millis = int(text) if text.isdigit() else _iso_millis(text)
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r}: give a snapshot id or a timestamp like 2026-01-05T10:00:00") from None
    snapshot = table.snapshot_as_of_timestamp(millis)
    if snapshot is None:
        raise NotFoundError(no_snapshot_at(table, text, millis, first_commit_ms))
    return snapshot.snapshot_id


def _iso_millis(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _local(path: str) -> str:
    return path.removeprefix("file://")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class QueryEngine:
    def __init__(self, runtime: Runtime, *, as_of: str | int | None = None) -> None:
        self.runtime, self.as_of = runtime, as_of
        self.con = duckdb.connect()
        self._registered: set[str] = set()
        # what icefloe.events was filled with: None not yet, {} every event, else the page filter
        self._events_filter: dict[str, str] | None = None
        # per table: files in the snapshot, files left after pruning, the filter pushed down
        self.plans: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def tables(self) -> list[str]:
        catalog = self.runtime.catalog
        return [".".join(ident) for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)]

    def query(self, sql: str) -> pa.Table:
        lowered = sql.lower()
        ledger = "icefloe." in lowered or '"icefloe"' in lowered
        outage: StorageUnavailableError | None = None
        try:
            tables = self.tables()
        except StorageUnavailableError as exc:
            if not ledger:
                raise
            tables, outage = [], exc  # the ledger answers without the catalog
        wanted = [n for n in tables if n not in self._registered and re.search(rf"\b{re.escape(n.lower())}\b", lowered)]
        names = _ledger_names(lowered) if ledger else set()
        predicates = predicates_by_table(sql) if wanted or "events" in names else {}
        for name in wanted:
            self.register(name, predicates.get(name.lower(), []))
        if ledger:
            self._register_ledger(names, _event_filter(predicates.get("icefloe.events", [])))
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.CatalogException as exc:
            if outage is not None:  # a lake table it names could not be looked up
                raise outage from None
            known = [*tables, "icefloe.events", *(["icefloe.quarantine"] if self._quarantine() else [])]
            message = missing_table(sql, str(exc), known)
            if message:
                raise NotFoundError(message) from None
            raise IcefloeError(f"query failed: {exc}") from None
        except duckdb.Error as exc:
            raise IcefloeError(f"query failed: {exc}") from None

    def register(self, name: str, predicates: list[Predicate] | None = None) -> None:
        table = self.runtime.catalog.load_table(name)
        snapshot_id = resolve_as_of(table, self.as_of, first_commit_ms=lambda: self._first_commit_ms(name))
        namespace, _, short = name.rpartition(".")
        view = f"{_quote(namespace)}.{_quote(short)}"
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(namespace)}")
        snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
        schema = table.schemas()[snap.schema_id] if snap is not None and snap.schema_id is not None else table.schema()
        empty = f"__empty_{len(self._registered)}"
        self.con.register(empty, schema.as_arrow().empty_table())
        if table.current_snapshot() is None and snapshot_id is None:
            self.con.execute(f"CREATE VIEW {view} AS SELECT * FROM {empty}")
        else:
            row_filter = to_iceberg(predicates or [], schema)
            scan = table.scan(snapshot_id=snapshot_id, row_filter=row_filter)
            tasks = list(scan.plan_files())
            summary = (snap or table.current_snapshot()).summary  # type: ignore[union-attr]
            total = int(summary["total-data-files"] or 0) if summary else len(tasks)
            self.plans[name] = {"files": total, "planned": len(tasks), "filter": str(row_filter)}
            problem = "it has delete files" if any(t.delete_files for t in tasks) else reader_problem(table, schema)
            if problem is None and any("://" in t.file.file_path and not t.file.file_path.startswith("file:") for t in tasks):
                problem = "its files are on object storage (DuckDB reads local files here)"
            self.plans[name]["reader"] = "pyiceberg" if problem and tasks else "duckdb"
            if problem and tasks:
                self.plans[name]["why"] = problem
                data = f"__data_{len(self._registered)}"
                self.con.register(data, scan.to_arrow())
                self.con.execute(f"CREATE VIEW {view} AS SELECT * FROM {data}")
            elif not tasks:
                self.con.execute(f"CREATE VIEW {view} AS SELECT * FROM {empty}")
            else:
                files = ", ".join("'" + _local(t.file.file_path).replace("'", "''") + "'" for t in tasks)
                # by field id, typed as the snapshot's schema: a column a file lacks reads as NULL;
                # hive_partitioning off, since a path like ts_day=2026-01-04/ is not a column here
                self.con.execute(
                    f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{files}], "
                    f"schema = {field_id_schema(schema)}, hive_partitioning = false)"
                )
        self._registered.add(name)

    def _first_commit_ms(self, table: str) -> float | None:
        # asked only to word an error; read a page at a time, never every event at once
        first: float | None = None
        after = None
        while batch := self.runtime.ledger.page(states=["committed"], after=after, limit=EVENTS_PAGE):
            times = [e.committed_at for e in batch if e.table == table and e.committed_at]
            if times:
                first = min(times) if first is None else min(first, *times)
            after = batch[-1].seq
        return first * 1000 if first is not None else None

    def _quarantine(self) -> list[str]:
        return self.runtime.quarantine.files()

    def _register_ledger(self, names: set[str], only: dict[str, str]) -> None:
        """The `icefloe.*` tables the SQL names: a query that does not read the events does not
        copy them, and one that does copies them a page at a time into a DuckDB table (only the
        events of the state, pipeline or source its WHERE clause fixes, if it does)."""
        self.con.execute('CREATE SCHEMA IF NOT EXISTS "icefloe"')
        if "events" in names and self._events_filter is not None and self._events_filter not in ({}, only):
            self.con.execute('DROP TABLE "icefloe"."events"')  # filled for another query's filter
            self._events_filter = None
        if "events" in names and self._events_filter is None:
            self._copy_events(only)
            self._events_filter = only
        quarantine = self._quarantine() if "quarantine" in names and "icefloe.quarantine" not in self._registered else []
        if quarantine:
            files = ", ".join("'" + p.replace("'", "''") + "'" for p in quarantine)
            self.con.execute(
                f'CREATE VIEW "icefloe"."quarantine" AS SELECT * FROM read_parquet([{files}], union_by_name=true)'
            )
            self._registered.add("icefloe.quarantine")

    def _copy_events(self, only: dict[str, str]) -> None:
        # DuckDB holds the rows columnar (and spills past its memory limit); Python holds one page
        self.con.register("__events_page", _events_table([]))
        self.con.execute('CREATE TABLE "icefloe"."events" AS SELECT * FROM __events_page')
        states = [only["state"]] if "state" in only else None
        after = None
        while batch := self.runtime.ledger.page(
            states=states, pipeline=only.get("pipeline"), source=only.get("source"), after=after, limit=EVENTS_PAGE
        ):
            self.con.register("__events_page", _events_table(batch))
            self.con.execute('INSERT INTO "icefloe"."events" SELECT * FROM __events_page')
            after = batch[-1].seq
        self.con.unregister("__events_page")


def _event_filter(predicates: list[Predicate]) -> dict[str, str]:
    """`state = 'dead'`-like conjuncts on the columns the ledger pages by; DuckDB still applies
    them (and the rest), so this only makes the copy smaller."""
    return {
        column.lower(): text
        for column, op, kind, text in predicates
        if op == "COMPARE_EQUAL" and kind == "STRING" and column.lower() in ("state", "pipeline", "source")
    }


def _ledger_names(lowered: str) -> set[str]:
    """The tables of the `icefloe` schema a (lower-cased) query names: icefloe.events, "icefloe"."events"."""
    return {m[1] for m in re.findall(r'(?:\bicefloe|"icefloe")\s*\.\s*("?)([a-z_][a-z0-9_]*)\1', lowered)}


_EVENT_TYPES: dict[str, pa.DataType] = {
    "size": pa.int64(), "attempts": pa.int64(), "max_attempts": pa.int64(), "rows_in": pa.int64(),
    "rows_out": pa.int64(), "rows_quarantined": pa.int64(), "snapshot_id": pa.int64(), "version": pa.int64(),
    "seq": pa.int64(), "epoch": pa.int64(),
}  # fmt: skip
_TIMES = ("landed_at", "started_at", "committed_at", "updated_at", "next_attempt_at", "lease_expires_at")


def _events_table(events: list[Event]) -> pa.Table:
    from icefloe.ledger.base import Event

    names = list(Event.__dataclass_fields__)
    arrays = []
    for name in names:
        values = [getattr(e, name) for e in events]
        if name in _TIMES:
            arrays.append(pa.array([int(v * 1e6) if v else None for v in values], pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(values, _EVENT_TYPES.get(name, pa.string())))
    return pa.Table.from_arrays(arrays, names=names)

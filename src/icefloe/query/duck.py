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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from icefloe.errors import ConfigError, IcefloeError, NotFoundError, StorageUnavailableError
from icefloe.query.columns import field_id_schema, reader_problem
from icefloe.query.messages import missing_table, no_snapshot_at
from icefloe.query.pushdown import Predicate, predicates_by_table, to_iceberg

if TYPE_CHECKING:
    from icefloe.project import Project

__all__ = ["QueryEngine", "resolve_as_of"]


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
    def __init__(self, project: Project, *, as_of: str | int | None = None) -> None:
        self.project, self.as_of = project, as_of
        self.con = duckdb.connect()
        self._registered: set[str] = set()
        # per table: files in the snapshot, files left after pruning, the filter pushed down
        self.plans: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def tables(self) -> list[str]:
        catalog = self.project.catalog
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
        predicates = predicates_by_table(sql) if wanted else {}
        for name in wanted:
            self.register(name, predicates.get(name.lower(), []))
        if ledger:
            self._register_ledger()
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
        table = self.project.catalog.load_table(name)
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
        times = [
            e.committed_at
            for e in self.project.ledger.events(states=["committed"])
            if e.table == table and e.committed_at
        ]
        return min(times) * 1000 if times else None

    def _quarantine(self) -> list[Path]:
        return sorted(self.project.quarantine_dir.glob("*/*.parquet"))

    def _register_ledger(self) -> None:
        if "icefloe" in self._registered:
            return
        self.con.execute('CREATE SCHEMA IF NOT EXISTS "icefloe"')
        events = [e.to_dict() for e in self.project.ledger.events()]
        self.con.register("__events", _events_table(events))
        self.con.execute('CREATE VIEW "icefloe"."events" AS SELECT * FROM __events')
        quarantine = self._quarantine()
        if quarantine:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in quarantine)
            self.con.execute(
                f'CREATE VIEW "icefloe"."quarantine" AS SELECT * FROM read_parquet([{files}], union_by_name=true)'
            )
        self._registered.add("icefloe")


_EVENT_TYPES: dict[str, pa.DataType] = {
    "size": pa.int64(), "attempts": pa.int64(), "max_attempts": pa.int64(), "rows_in": pa.int64(),
    "rows_out": pa.int64(), "rows_quarantined": pa.int64(), "snapshot_id": pa.int64(), "version": pa.int64(),
    "epoch": pa.int64(), "seq": pa.int64(),
}  # fmt: skip
_TIMES = ("landed_at", "started_at", "committed_at", "updated_at", "next_attempt_at", "lease_expires_at")


def _events_table(rows: list[dict[str, Any]]) -> pa.Table:
    from icefloe.ledger.base import Event

    names = list(Event.__dataclass_fields__)
    arrays = []
    for name in names:
        values = [r[name] for r in rows]
        if name in _TIMES:
            arrays.append(pa.array([int(v * 1e6) if v else None for v in values], pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(values, _EVENT_TYPES.get(name, pa.string())))
    return pa.Table.from_arrays(arrays, names=names)

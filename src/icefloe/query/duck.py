"""SQL over the lake with DuckDB: Iceberg tables appear as views by name, the ledger as `icefloe.*`.

pyiceberg plans each referenced table (snapshot, manifests, live data files, delete files); DuckDB
reads the planned Parquet files directly, matching columns by Iceberg field id (query/columns.py)
and pushing projection and row-group statistics down. A table whose scan carries delete files, or
whose schema DuckDB cannot map by field id, is read through pyiceberg instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import duckdb
import pyarrow as pa
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table, TableProperties

from icefloe.errors import ConfigError, IcefloeError, NotFoundError, StorageUnavailableError
from icefloe.ledger.base import Event
from icefloe.query.columns import by_name, field_id_schema, reader_problem
from icefloe.query.messages import missing_table, no_snapshot_at
from icefloe.query.plans import SnapshotFiles, prune
from icefloe.query.pushdown import AnyOf, Predicate, parse, predicates_in, table_refs, to_iceberg
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


PARSED_KEPT = 64  # parse trees of recent queries kept per engine


class QueryEngine:
    """One DuckDB connection whose views follow the lake: each query re-reads the current snapshot
    of every table it names, and redefines a table's view only when it would read something else.

    A view is keyed by the table's uuid, the snapshot read, the schema id and the pushed filter
    (and the name mapping, which decides the reader): a commit, a schema change or another
    filter is another key, so a view never serves data other than that snapshot's. The files of
    a snapshot are listed once (query/plans.py); a new filter only prunes that list again."""

    def __init__(self, runtime: Runtime, *, as_of: str | int | None = None) -> None:
        self.runtime, self.as_of = runtime, as_of
        self.con = duckdb.connect()
        self._lock = threading.RLock()  # one connection: one query at a time
        # per table: files in the snapshot, files left after pruning, the filter pushed down
        self.plans: dict[str, dict[str, Any]] = {}
        self.snapshots = SnapshotFiles()
        self._views: dict[str, tuple[Any, ...]] = {}  # table -> the key its view reads now
        self._files: dict[str, list[str]] = {}  # view -> the files it reads
        self._slots: dict[str, int] = {}  # table -> suffix of the Arrow tables registered for it
        self._parsed: dict[str, tuple[set[str] | None, dict[str, list[Predicate]]]] = {}
        # data files never change once written (a commit adds new ones), so their Parquet
        # footers can be kept between queries instead of read again by every query's bind
        self.con.execute("SET parquet_metadata_cache = true")

    @property
    def planned(self) -> int:
        """How many snapshots pyiceberg listed from their manifests (the plan cache's misses)."""
        return self.snapshots.listed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self.con.close()

    def tables(self) -> list[str]:
        catalog = self.runtime.catalog
        return [".".join(ident) for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)]

    def query(self, sql: str, *, as_of: str | int | None = None) -> pa.Table:
        """Run `sql`; `as_of` (a snapshot id or time, for this query) defaults to the engine's."""
        with self._lock:
            return self._query(sql, self.as_of if as_of is None else as_of)

    def _parse(self, sql: str) -> tuple[set[str] | None, dict[str, list[Predicate]]]:
        """The tables a query names (None if DuckDB cannot parse it) and the predicates it can
        push, kept for the last queries run: a dashboard repeats its queries."""
        if sql not in self._parsed:
            tree = parse(self.con, sql)
            self._parsed[sql] = (table_refs(tree), predicates_in(tree)) if tree is not None else (None, {})
            while len(self._parsed) > PARSED_KEPT:
                self._parsed.pop(next(iter(self._parsed)))
        return self._parsed[sql]

    def _lake_tables(self, sql: str, named: set[str] | None) -> dict[str, Table]:
        """The lake tables the query names, loaded: straight by the names its FROM clauses give;
        by listing the catalog (as before) only when one of those is not found as written."""
        found: dict[str, Table] = {}
        if named is not None:
            try:
                for name in sorted(n for n in named if n.split(".")[0].lower() != "icefloe"):
                    found[name] = self.runtime.catalog.load_table(name)
                return found
            except (NoSuchTableError, NoSuchNamespaceError, ValueError):
                found = {}  # another case, a DuckDB table, a CTE: look it up the old way
        lowered = sql.lower()
        return {n: self.runtime.catalog.load_table(n) for n in self.tables() if re.search(rf"\b{re.escape(n.lower())}\b", lowered)}

    def prepare(self, sql: str) -> tuple[list[str], StorageUnavailableError | None]:
        """Make the views `sql` names without running it (the read-only console locks DuckDB
        down to `files` in between): the lake tables named, and whether the catalog was down."""
        with self._lock:
            wanted, outage = self._prepare(sql, self.as_of)
        return list(wanted), outage

    @property
    def files(self) -> list[str]:
        """Every file the views read now: the read-only console allows DuckDB these and no other."""
        return [path for paths in self._files.values() for path in paths]

    def _query(self, sql: str, as_of: str | int | None) -> pa.Table:
        wanted, outage = self._prepare(sql, as_of)
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.CatalogException as exc:
            if outage is not None:  # a lake table it names could not be looked up
                raise outage from None
            try:
                tables = self.tables()
            except StorageUnavailableError:
                tables = list(wanted)
            known = [*tables, "icefloe.events", *(["icefloe.quarantine"] if self._quarantine() else [])]
            message = missing_table(sql, str(exc), known)
            if message:
                raise NotFoundError(message) from None
            raise IcefloeError(f"query failed: {exc}") from None
        except duckdb.Error as exc:
            raise IcefloeError(f"query failed: {exc}") from None

    def _prepare(self, sql: str, as_of: str | int | None) -> tuple[dict[str, Table], StorageUnavailableError | None]:
        lowered = sql.lower()
        ledger = "icefloe." in lowered or '"icefloe"' in lowered
        named, pushable = self._parse(sql)
        outage: StorageUnavailableError | None = None
        try:
            wanted = self._lake_tables(sql, named)
        except StorageUnavailableError as exc:
            if not ledger:
                raise
            wanted, outage = {}, exc  # the ledger answers without the catalog
        # a view this query does not refresh could read an older snapshot: it goes
        for name in [n for n in self._views if n not in wanted]:
            self._drop_view(name)
        names = _ledger_names(lowered) if ledger else set()
        predicates = pushable if wanted or "events" in names else {}
        for name, table in wanted.items():
            self.register(name, predicates.get(name.lower(), []), as_of=as_of, table=table)
        if ledger:
            self._register_ledger(names, _event_filter(predicates.get("icefloe.events", [])))
        return wanted, outage

    def register(
        self, name: str, predicates: list[Predicate] | None = None, *, as_of: str | int | None = None, table: Table | None = None
    ) -> None:
        """(Re)define the view of table `name` for its current snapshot (or `as_of`'s)."""
        as_of = self.as_of if as_of is None else as_of
        table = table if table is not None else self.runtime.catalog.load_table(name)
        snapshot_id = resolve_as_of(table, as_of, first_commit_ms=lambda: self._first_commit_ms(name))
        snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
        schema = table.schemas()[snap.schema_id] if snapshot_id is not None and snap is not None and snap.schema_id is not None else table.schema()
        row_filter = to_iceberg(predicates or [], schema) if snap is not None else AlwaysTrue()
        mapping = table.properties.get(TableProperties.DEFAULT_NAME_MAPPING)
        key = (str(table.metadata.table_uuid), snap.snapshot_id if snap else None, schema.schema_id, str(row_filter), mapping)
        if self._views.get(name) == key:
            self.plans[name]["cached"] = True
            return  # the view already reads exactly this
        listed = self.snapshots.listed
        every, total = self.snapshots.tasks(table, snap.snapshot_id) if snap is not None else ((), 0)
        tasks = prune(table, schema, every, row_filter)
        problem = ("it has delete files" if any(t.delete_files for t in tasks) else reader_problem(table, schema)) if tasks else None
        if problem is None and any("://" in t.file.file_path and not t.file.file_path.startswith("file:") for t in tasks):
            problem = "its files are on object storage (DuckDB reads local files here)"
        self.plans[name] = {
            "files": total, "planned": len(tasks), "filter": str(row_filter),
            "reader": "pyiceberg" if problem else "duckdb", "cached": self.snapshots.listed == listed,
            **({"why": problem} if problem else {}),
        }  # fmt: skip
        namespace, _, short = name.rpartition(".")
        view = f"{_quote(namespace)}.{_quote(short)}"
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(namespace)}")
        slot = self._slots.setdefault(name, len(self._slots))
        self._files.pop(name, None)
        if problem is not None:
            # the current schema without as_of (pyiceberg would read a snapshot by its own schema)
            projected = table.schemas()[snap.schema_id] if snapshot_id is not None and snap is not None and snap.schema_id is not None else table.schema()
            data = f"__data_{slot}"
            self.con.register(data, ArrowScan(table.metadata, table.io, projected, row_filter).to_table(tasks))
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {data}")
        elif not tasks:
            empty = f"__empty_{slot}"
            self.con.register(empty, schema.as_arrow().empty_table())
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {empty}")
        else:
            self._files[name] = [_local(t.file.file_path) for t in tasks]
            files = ", ".join("'" + _local(t.file.file_path).replace("'", "''") + "'" for t in tasks)
            # hive_partitioning off, since a path like ts_day=2026-01-04/ is not a column here
            if by_name(table, schema):
                columns = ", ".join(_quote(f.name) for f in schema.fields)
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM read_parquet([{files}], hive_partitioning = false)"
                )
            else:
                # by field id, typed as the snapshot's schema: a column a file lacks reads as NULL
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{files}], "
                    f"schema = {field_id_schema(schema)}, hive_partitioning = false)"
                )
        self._views[name] = key

    def _drop_view(self, name: str) -> None:
        namespace, _, short = name.rpartition(".")
        self.con.execute(f"DROP VIEW IF EXISTS {_quote(namespace)}.{_quote(short)}")
        slot = self._slots.get(name)
        for registered in (f"__data_{slot}", f"__empty_{slot}") if slot is not None else ():
            try:
                self.con.unregister(registered)
            except duckdb.Error:
                pass
        del self._views[name]
        self._files.pop(name, None)

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
        events of the state, pipeline or source its WHERE clause fixes, if it does). The ledger
        moves on between queries, so each query that names them copies them afresh."""
        self.con.execute('CREATE SCHEMA IF NOT EXISTS "icefloe"')
        if "events" in names:
            self.con.execute('DROP TABLE IF EXISTS "icefloe"."events"')
            self._copy_events(only)
        if "quarantine" in names:
            quarantine = self._quarantine()
            self._files["icefloe.quarantine"] = list(quarantine)
            if quarantine:
                files = ", ".join("'" + p.replace("'", "''") + "'" for p in quarantine)
                self.con.execute(
                    f'CREATE OR REPLACE VIEW "icefloe"."quarantine" AS SELECT * FROM read_parquet([{files}], union_by_name=true)'
                )
            else:
                self.con.execute('DROP VIEW IF EXISTS "icefloe"."quarantine"')

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
        for column, op, kind, text in (p for p in predicates if not isinstance(p, AnyOf))
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

"""The pyiceberg internals icefloe relies on for its commits, in one place (pinned by tests/lake/test_compat.py).

pyiceberg 0.12's `Transaction.commit_transaction` retries a commit that lost a race by rebuilding
its registered snapshot producers on the new table head, up to the table property
`commit.retry.num-retries` (default 4) times. icefloe must see every conflict itself: before each
attempt it re-reads which event ids the table already holds, and a silent re-apply would skip that
check and write an event twice. Setting the property on the table would also turn retries off for
Spark, Flink and Trino writing the same table, so it is done here, for icefloe's transactions only.

pyiceberg 0.12's `ArrowProjectionVisitor.list` rebuilds a list of structs from its offsets and
values (working around apache/arrow#38809) and drops the list's validity on the way, so a NULL
list of structs was written, compacted and read as an empty list. `_keep_list_nulls` puts it back.

pyiceberg 0.12's `Transaction.table_metadata` applies the pending updates and deep-copies the
whole table metadata (every snapshot, its summary, the snapshot and metadata logs) on every
access, and one fast append reads it some sixteen times: most of a small commit's time, and it
grows with the snapshots the table keeps. `NoRetryTransaction` computes it once per state of the
transaction, and without the deep copy: the metadata models are frozen and every update builds
new lists and maps, so the staged state can share the parts it does not change with the table's.

Its `SqlCatalog` opens a SQLite file as SQLite does by default: a rollback journal, which fsyncs
the journal and the database file on every commit and blocks every reader (another process's
`load_table`: the maintenance process, a second worker) while a commit writes. `LeanSqlCatalog`
switches the file to WAL once, with synchronous=FULL: each commit is still durable when it
returns (the WAL is fsynced), with one fsync instead of several, and readers never wait for a
writer (bench 8's commits spent most of their catalog time in those COMMITs).

Its `ManifestFile.fetch_manifest_entry` converts the manifest's Avro schema to an Iceberg schema
and resolves a reader tree for it, in Python, for every manifest it reads: ~4 ms each, most of
planning a table of 200 commits (each a manifest). The schema text is the same for every manifest
of one partition spec and the reader tree keeps no state, so `read_manifest_entries` resolves it
once per schema text.

Its `SqlCatalog` parses the metadata file on every `load_table`, also inside `commit_table`
(the current state to apply the updates to), so one commit parsed the same file twice more.
A metadata file never changes once written: `LeanSqlCatalog` keeps the last few it parsed or
committed, by location, and builds each loaded table on the parsed state it already has. Its
`commit_table` ends by deep-copying the metadata it commits (`update_table_metadata`): every
snapshot, summary and log entry, on every commit: the one copy left, and its cost grew with every
snapshot the table keeps (bench 9: ten bulk snapshots more). `LeanSqlCatalog` stages that metadata
as the transaction does, sharing the frozen parts the updates leave alone.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, Self

import pyarrow as pa
from pyiceberg.avro.decoder import new_decoder
from pyiceberg.avro.file import META_SCHEMA, AvroFile, AvroFileHeader
from pyiceberg.avro.reader import Reader
from pyiceberg.avro.resolver import construct_reader, resolve_reader
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions.visitors import _InclusiveMetricsEvaluator
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowProjectionVisitor, _dataframe_to_data_files, _to_requested_schema
from pyiceberg.manifest import (
    DEFAULT_READ_VERSION,
    MANIFEST_ENTRY_SCHEMAS,
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    _inherit_from_manifest,
)
from pyiceberg.schema import Schema
from pyiceberg.table import StagedTable, Table, Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import (
    TableRequirement,
    TableUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.table.update.snapshot import _OverwriteFiles, _SnapshotProducer
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.datetime import datetime_to_millis
from sqlalchemy import Engine, event

__all__ = [
    "RETRY_PROPERTY",
    "LeanSqlCatalog",
    "InclusiveMetricsEvaluator",
    "NoRetryTransaction",
    "OverwriteFiles",
    "SnapshotProducer",
    "dataframe_to_data_files",
    "pyiceberg_executor",
    "read_manifest_entries",
    "to_requested_schema",
    "transaction",
    "transaction_io",
]

# the private pyiceberg names the lake builds on; tests/lake/test_compat.py pins their signatures
OverwriteFiles = _OverwriteFiles  # a snapshot producer that deletes and adds files in one snapshot
SnapshotProducer = _SnapshotProducer  # the base of icefloe's own producers (manifest rewrite, upsert)
dataframe_to_data_files = _dataframe_to_data_files  # Arrow rows -> Parquet data files of a table
to_requested_schema = _to_requested_schema  # a file's batch -> the table schema, by field id
# may a data file hold rows matching a filter, by its column bounds (the query's plan cache prunes with it)
InclusiveMetricsEvaluator = _InclusiveMetricsEvaluator

RETRY_PROPERTY = "commit.retry.num-retries"


def staged_metadata(base: TableMetadata, updates: tuple[TableUpdate, ...]) -> TableMetadata:
    """`update_table_metadata(base, updates)` without its closing deep copy (see the module doc).

    What a transaction reads while it stages its updates; the catalog validates and copies the
    metadata it commits itself. No update: the table's own (frozen) metadata."""
    metadata = base
    context = _TableMetadataUpdateContext()
    for update in updates:
        metadata = _apply_table_update(update, metadata, context)
    return metadata


def committed_metadata(base: TableMetadata, updates: tuple[TableUpdate, ...], location: str) -> TableMetadata:
    """`update_table_metadata(base, updates, metadata_location=location)` for an existing table,
    without its closing deep copy: what the catalog writes and hands back as the new state."""
    context = _TableMetadataUpdateContext()
    metadata = base
    for update in updates:
        metadata = _apply_table_update(update, metadata, context)
    if context.has_changes():
        metadata = _update_table_metadata_log(metadata, location, base.last_updated_ms)
        if base.last_updated_ms == metadata.last_updated_ms:
            metadata = metadata.model_copy(update={"last_updated_ms": datetime_to_millis(datetime.now().astimezone())})
    metadata.spec().check_compatible(metadata.schema())
    metadata.sort_order().check_compatible(metadata.schema())
    return metadata


class NoRetryTransaction(Transaction):
    """A transaction whose commit fails on the first conflict, whatever the table's properties say.

    pyiceberg retries only while the transaction has snapshot producers registered (a transaction
    without them has nothing to rebuild), so they are held aside for the catalog call and only
    used for what they are also needed for: deleting the manifests of a commit that did not land.
    """

    _pinned: tuple[TableMetadata, tuple[Any, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        """The metadata this transaction would commit, copied once per state, not per access.

        The state is the table's metadata object (a commit or refresh replaces it) and the tuple
        of staged updates (staging builds a new one), both compared by identity, so a reader
        never sees metadata older than the transaction. It shares what the updates leave alone
        with the table's metadata: both are frozen models, nothing changes either in place."""
        base, updates = self._table.metadata, self._updates
        pinned = self._pinned
        if pinned is None or pinned[0] is not base or pinned[1] is not updates:
            pinned = self._pinned = (base, updates, staged_metadata(base, updates))
        return pinned[2]

    def commit_transaction(self) -> Table:
        producers: list[Any] = self._snapshot_producers
        if not self._updates or not producers:
            # nothing pyiceberg would retry; an empty update with producers validates concurrency
            return super().commit_transaction()
        self._snapshot_producers = []
        try:
            return super().commit_transaction()
        except (CommitFailedException, ValidationException):
            for producer in producers:  # the commit did not land: what it wrote is garbage
                producer._clean_all_uncommitted()
            raise


class LeanSqlCatalog(SqlCatalog):
    """pyiceberg's SQL catalog, parsing each metadata file once (see the module doc)."""

    KEEP = 8  # parsed metadata files kept per catalog: a worker commits to a few tables at a time

    def __init__(self, name: str, **properties: str) -> None:
        super().__init__(name, **properties)
        self._parsed: OrderedDict[str, TableMetadata] = OrderedDict()
        self._parsed_lock = threading.Lock()
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            _sqlite_wal(self.engine)

    def _remember(self, location: str, metadata: TableMetadata) -> None:
        with self._parsed_lock:
            self._parsed[location] = metadata
            self._parsed.move_to_end(location)
            while len(self._parsed) > self.KEEP:
                self._parsed.popitem(last=False)

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        location = orm_table.metadata_location
        with self._parsed_lock:
            metadata = self._parsed.get(location) if location else None
        if location is None or metadata is None or not orm_table.table_namespace or not orm_table.table_name:
            table = super()._convert_orm_to_iceberg(orm_table)
            self._remember(table.metadata_location, table.metadata)
            return table
        return Table(
            identifier=Catalog.identifier_to_tuple(orm_table.table_namespace) + (orm_table.table_name,),
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(metadata.properties, location),
            catalog=self,
        )

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Any,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> StagedTable:
        if current_table is None:  # a new table: pyiceberg validates it whole, once
            return super()._update_and_stage_table(current_table, table_identifier, requirements, updates)
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        metadata = committed_metadata(current_table.metadata, updates, current_table.metadata_location)
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        locations = load_location_provider(metadata.location, metadata.properties)
        location = locations.new_table_metadata_file_location(version)
        return StagedTable(
            identifier=table_identifier, metadata=metadata, metadata_location=location,
            io=self._load_file_io(properties=metadata.properties, location=location), catalog=self,
        )  # fmt: skip

    def commit_table(self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]) -> Any:
        response = super().commit_table(table, requirements, updates)
        # what the next load of this table reads back: the file this commit just wrote
        self._remember(response.metadata_location, response.metadata)
        return response


def _sqlite_wal(engine: Engine) -> None:
    """WAL and synchronous=FULL on every connection of a SQLite catalog (see the module doc)."""

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA synchronous=FULL")  # a commit is durable when it returns, as before
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file: once per database
        finally:
            cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # the connection the catalog opened to create its tables predates the hook


@contextmanager
def pyiceberg_executor(executor: Executor) -> Iterator[None]:
    """pyiceberg's one shared thread pool (`ExecutorFactory`: manifest reads and writes) is this
    executor while inside. The maintenance process's commit-gate thread uses it: the shared
    pool's threads were started by the child's lower-priority thread, and inherit its priority."""
    saved = ExecutorFactory._instance, ExecutorFactory._instance_pid
    ExecutorFactory._instance, ExecutorFactory._instance_pid = executor, os.getpid()
    try:
        yield
    finally:
        ExecutorFactory._instance, ExecutorFactory._instance_pid = saved
class _ManifestAvroFile(AvroFile[ManifestEntry]):
    """pyiceberg's `AvroFile`, its schema and reader tree resolved once per schema text."""

    _resolved: ClassVar[OrderedDict[str, tuple[Schema, Reader]]] = OrderedDict()
    _resolved_lock: ClassVar[threading.Lock] = threading.Lock()
    KEEP = 64  # schema texts: one per partition spec (and writer version) of the tables read
    _header_reader: ClassVar[Reader | None] = None

    def __enter__(self) -> Self:
        with self.input_file.open() as f:
            self.decoder = new_decoder(f.read())
        self.header = self._read_header()
        text = self.header.meta.get("avro.schema", "")
        # held while resolving: manifests are read on several threads, and each would resolve it
        with self._resolved_lock:
            found = self._resolved.get(text)
            if found is None:
                schema = self.header.get_schema()
                # the read schema, types and enums are the same for every manifest (read_manifest_entries)
                found = (schema, resolve_reader(schema, self.read_schema or schema, self.read_types, self.read_enums))
                self._resolved[text] = found
                while len(self._resolved) > self.KEEP:
                    self._resolved.popitem(last=False)
        self.schema, self.reader = found
        self.read_schema = self.read_schema or self.schema
        return self

    def _read_header(self) -> AvroFileHeader:
        if _ManifestAvroFile._header_reader is None:  # pyiceberg builds it anew for every file
            _ManifestAvroFile._header_reader = construct_reader(META_SCHEMA, {-1: AvroFileHeader})
        header: AvroFileHeader = _ManifestAvroFile._header_reader.read(self.decoder)
        return header


def read_manifest_entries(manifest: ManifestFile, io: FileIO, discard_deleted: bool = True) -> list[ManifestEntry]:
    """`manifest.fetch_manifest_entry(io, discard_deleted)`, resolving its reader once per schema."""
    with _ManifestAvroFile(
        io.new_input(manifest.manifest_path),
        MANIFEST_ENTRY_SCHEMAS[DEFAULT_READ_VERSION],
        read_types={-1: ManifestEntry, 2: DataFile},
        read_enums={0: ManifestEntryStatus, 101: FileFormat, 134: DataFileContent},
    ) as reader:
        return [
            _inherit_from_manifest(entry, manifest)
            for entry in reader
            if not discard_deleted or entry.status != ManifestEntryStatus.DELETED
        ]


def transaction(table: Table) -> Transaction:
    """`table.transaction()` for icefloe's own commits: conflicts come back to the caller."""
    return NoRetryTransaction(table)


def transaction_io(tx: Transaction) -> FileIO:
    """The FileIO of the table a transaction writes (pyiceberg keeps it on a private attribute)."""
    io: FileIO = tx._table.io
    return io


_LISTS = (pa.ListArray, pa.LargeListArray)


def _keep_list_nulls(list_fn: Any) -> Any:
    def list_(self: ArrowProjectionVisitor, list_type: Any, list_array: Any, value_array: Any) -> Any:
        result = list_fn(self, list_type, list_array, value_array)
        if not isinstance(list_array, _LISTS) or not isinstance(result, _LISTS):
            return result
        if list_array.null_count == 0 or result.null_count == list_array.null_count:
            return result
        return type(result).from_arrays(result.offsets, result.values, type=result.type, mask=list_array.is_null())

    list_.__wrapped__ = list_fn  # type: ignore[attr-defined]
    return list_


if not hasattr(ArrowProjectionVisitor.list, "__wrapped__"):
    ArrowProjectionVisitor.list = _keep_list_nulls(ArrowProjectionVisitor.list)  # type: ignore[method-assign]

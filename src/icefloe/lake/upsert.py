"""Upsert and delete by key, rewriting only the data files that hold one of the keys.

pyiceberg's `Transaction.upsert` scans with an `In` filter over every key (slow to build and to
plan for 100k keys), compares rows one at a time in Python, then deletes by predicate, which
rewrites every file the predicate cannot rule out. Here one copy-on-write snapshot is built so:

1. plan with a coarse filter (`In` for key columns with few distinct values, else a min/max range)
   so pyiceberg prunes manifests and partitions; then per file, its key bounds (bisect over the
   sorted batch keys) and key-derived partition values (bucket, identity, day...) narrow the batch
   keys that file could hold, often to none;
2. read only the key columns of the files left and look the keys up exactly (vectorised); a
   file whose dense integer key range says it surely holds some is read whole at once instead;
3. for files with hits, read the other columns, compare matched rows, drop the rows being
   replaced and write what remains, coalesced into few files on background threads;
4. append the updated and new rows (sorted by key, so later upserts prune well) and commit one
   overwrite snapshot that deletes the rewritten files, reusing the manifests read while
   planning (pyiceberg's overwrite would read them twice more).

Semantics match pyiceberg's upsert (when_matched_update_all, when_not_matched_insert_all): a matched
row is replaced only when some non-key column differs (NaN differs from NaN, null equals null,
as in its Python comparison); unmatched rows are inserted; keys must be unique in the batch. It
differs on purpose where pyiceberg fails: a null key is a DataError (pyiceberg raises TypeError),
and a key held by several target rows replaces all of them when any differs (pyiceberg aborts).

Step 1 is `upsert_plan` (with `upsert_bounds`), the file reads `upsert_read` (pyarrow directly
where pyiceberg's scan has nothing to resolve), the row matching of steps 2-3 `upsert_match`, the
snapshot of step 4 `upsert_commit`; this module runs them and writes the rows.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.manifest import DataFile, ManifestEntry
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import UpdateSnapshot

from icefloe.errors import ConfigError, DataError
from icefloe.lake.compat import SnapshotProducer, dataframe_to_data_files, transaction_io
from icefloe.lake.evolve import align_to_table
from icefloe.lake.parquet import Encodings
from icefloe.lake.stream import write_data_file
from icefloe.lake.upsert_bounds import BatchBounds
from icefloe.lake.upsert_commit import OneReadOverwrite, PinnedMetadata
from icefloe.lake.upsert_match import arange, differs, lookup
from icefloe.lake.upsert_plan import FilePlanner
from icefloe.lake.upsert_read import FileReader

__all__ = ["DeleteResult", "UpsertResult", "delete_keys", "upsert"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_CHUNK_BYTES = 32 << 20  # rewritten rows are written in chunks this big (Arrow bytes), one writer each
_MIN_PIECE_BYTES = 8 << 20


@dataclass(frozen=True)
class UpsertResult:
    rows_updated: int
    rows_inserted: int
    files_rewritten: int
    files_scanned: int  # files whose key columns had to be read


@dataclass(frozen=True)
class DeleteResult:
    rows_deleted: int
    files_rewritten: int
    files_scanned: int


def upsert(tx: Transaction, data: pa.Table, key: list[str], *, snapshot_properties: dict[str, str] | None = None) -> UpsertResult:
    """Update changed rows and insert new ones by `key`, in one snapshot of `tx`.

    With `snapshot_properties` a snapshot is committed even when nothing changed, so the
    properties (icefloe's event ids) are recorded."""
    job = _KeyedRewrite(tx, key, compare=True)
    data = align_to_table(data, job.schema)
    for name in key:
        if data[name].null_count:
            raise DataError(
                f"upsert key {name!r} is null in {data[name].null_count} row(s): a row without its key matches nothing"
                f" (a not_null check on {name!r} would quarantine such rows instead)"
            )
    if data.select(key).group_by(key, use_threads=False).aggregate([]).num_rows != data.num_rows:
        raise ValueError("duplicate keys in the upsert batch; keep one row per key first (keep_last_by_key)")
    with job.on(data):
        found = job.run()
        if found.stale:  # a key held by several rows, some unchanged: replace every one of them
            job.discard()
            found = job.run(force=found.dropped)
        appended = pc.or_(pc.invert(pc.is_in(job.rows, value_set=found.matched)), pc.is_in(job.rows, value_set=found.dropped))
        new_rows = job.batch.filter(appended)
        job.write(new_rows.sort_by([(name, "ascending") for name in key]) if new_rows.num_rows else new_rows)
        job.commit(snapshot_properties or {})
    return UpsertResult(
        rows_updated=len(found.dropped),
        rows_inserted=data.num_rows - len(found.matched),
        files_rewritten=found.rewritten,
        files_scanned=found.scanned,
    )


def delete_keys(
    tx: Transaction,
    keys: pa.Table,
    key: list[str],
    *,
    snapshot_properties: dict[str, str] | None = None,
    add: pa.Table | None = None,
    add_files: list[DataFile] | None = None,
) -> DeleteResult:
    """Delete every row whose `key` equals a row of `keys` (null keys match nothing); the rows
    `add` and the data files `add_files` (already written) are added in the same snapshot."""
    job = _KeyedRewrite(tx, key, compare=False)
    target = job.schema.select(*key).as_arrow()
    keys = pa.Table.from_arrays([keys[f.name].cast(f.type) for f in target], schema=target)
    keys = keys.drop_null().group_by(key, use_threads=False).aggregate([])
    with job.on(keys):
        found = job.run()
        if add is not None and add.num_rows:
            job.write(align_to_table(add, job.schema))
        job.commit(snapshot_properties or {}, add_files or [])
    return DeleteResult(rows_deleted=found.rows_dropped, files_rewritten=found.rewritten, files_scanned=found.scanned)


def _check_key(schema: Schema, key: list[str]) -> None:
    if not key:
        raise ConfigError("upsert needs a key")
    names = {f.name for f in schema.fields}
    if missing := [k for k in key if k not in names]:
        raise ConfigError(f"key column(s) {', '.join(missing)} not in the table (columns: {', '.join(sorted(names))})")


@dataclass
class _Found:
    matched: pa.Array  # batch rows that matched some table row
    dropped: pa.Array  # batch rows whose table rows were removed (changed, or deleted)
    rewritten: int  # data files replaced
    scanned: int
    rows_dropped: int
    stale: bool  # a matched table row was kept although its key was replaced elsewhere


@dataclass
class _Probe:
    """What one data file holds of the batch's keys, and what is left of it after the drop."""

    task: FileScanTask
    matched: pa.Array
    dropped: pa.Array
    kept_matched: pa.Array
    remainder: pa.Table | None  # None: the file stays as it is
    rows_dropped: int = 0


class _KeyedRewrite:
    """Finds the files holding a batch's keys and rewrites them; one instance per commit."""

    def __init__(self, tx: Transaction, key: list[str], *, compare: bool) -> None:
        self.key, self.compare = key, compare
        self.tx: Any = PinnedMetadata(tx)  # for the snapshot producer too
        self.meta: TableMetadata = self.tx.table_metadata
        self.io = transaction_io(tx)
        self.schema = self.meta.schema()
        _check_key(self.schema, key)
        self.target = self.schema.as_arrow()
        self.workers = max(2, os.cpu_count() or 2)
        self._uuid, self._counter = uuid.uuid4(), itertools.count()
        self._writes: list[Future[list[DataFile]]] = []
        self._deleted: list[DataFile] = []
        self._encodings = Encodings()  # every file this commit writes: rows of one table
        self._reader = FileReader(self.meta, self.io)
        self.entries: dict[str, list[ManifestEntry]] = {}  # data manifest -> its live entries

    def on(self, batch: pa.Table) -> Self:
        """Work on this batch (aligned to the table, unique keys) until the `with` block ends."""
        # every candidate file takes its rows from the batch: a take from a column of several
        # chunks concatenates them first, so with the chunks a reader left that was most of the
        # CPU of a 200-file rewrite; combined once here instead
        self.batch, self.rows = batch.combine_chunks(), arange(batch.num_rows)
        self._keys = self.batch.select(self.key)
        self._bounds = BatchBounds(self.schema, self.batch, self.key)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="icefloe-upsert")
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.discard()
        self._pool.shutdown(wait=True)

    # -- finding ------------------------------------------------------------------------------
    def run(self, force: pa.Array | None = None) -> _Found:
        planner = FilePlanner(self.meta, self.io, self.key, self.batch, self._bounds)
        candidates = planner.candidates()
        self.entries = planner.entries
        force = force if force is not None else pa.array([], pa.int64())
        pending: list[pa.Table] = []
        pending_bytes = 0
        probes: list[_Probe] = []
        for probe in _bounded_map(self._pool, lambda c: self._probe(c[0], c[1], force), candidates, 2 * self.workers):
            remainder, probe.remainder = probe.remainder, None  # held only until written
            probes.append(probe)
            if remainder is None:
                continue
            self._deleted.append(probe.task.file)
            if remainder.num_rows:
                pending.append(remainder)
                pending_bytes += remainder.nbytes
            if pending_bytes >= _CHUNK_BYTES:
                self._throttle()
                self.write(pa.concat_tables(pending))
                pending, pending_bytes = [], 0
        if pending:
            self.write(pa.concat_tables(pending))
        matched = pc.unique(pa.chunked_array([p.matched for p in probes], pa.int64()))
        dropped = pc.unique(pa.chunked_array([p.dropped for p in probes], pa.int64()))
        kept = pa.chunked_array([p.kept_matched for p in probes], pa.int64())
        return _Found(
            matched=matched,
            dropped=dropped,
            rewritten=len(self._deleted),
            scanned=len(candidates),
            rows_dropped=sum(p.rows_dropped for p in probes),
            stale=bool(len(kept)) and pc.any(pc.is_in(kept, value_set=dropped)).as_py() is True,
        )

    def _probe(self, task: FileScanTask, idx: pa.Array, force: pa.Array) -> _Probe:
        rest = [n for n in self.target.names if n not in self.key]
        # a file that surely holds some keys is read whole at once; else its keys first
        likely = self._bounds.expected_hits(task.file, len(idx)) >= 1
        keys = self._reader.read(task, self.target.names if likely else self.key)
        hits = lookup(self._keys, idx, keys)  # batch row per file row, null where none
        matched = hits.drop_null()
        if not len(matched):
            return _Probe(task, matched, matched, matched, None)
        if not self.compare and len(matched) == len(hits):  # every row goes: nothing more to read
            return _Probe(task, matched, matched, matched.slice(0, 0), self.target.empty_table(), len(matched))
        others = keys if likely or not rest else self._reader.read(task, rest)
        full = pa.Table.from_arrays([keys[n] if n in self.key else others[n] for n in self.target.names], schema=self.target)
        drop = pc.is_valid(hits)
        if self.compare:
            at = pc.indices_nonzero(drop)
            changed = matched.filter(differs(full.select(rest).take(at), self.batch.select(rest).take(matched)))
            drop = pc.is_in(hits, value_set=pa.concat_arrays([changed, force]))
        dropped = hits.filter(drop)
        kept_matched = hits.filter(pc.and_(pc.is_valid(hits), pc.invert(drop)))
        if not len(dropped):
            return _Probe(task, matched, dropped, kept_matched, None)
        return _Probe(task, matched, dropped, kept_matched, full.filter(pc.invert(drop)), len(dropped))

    # -- writing ------------------------------------------------------------------------------
    def write(self, rows: pa.Table) -> None:
        """Write on the pool, in pieces of at most _CHUNK_BYTES and at least one per worker (when
        pieces stay above _MIN_PIECE_BYTES), so that all cores encode, the last rows too."""
        size = rows.nbytes if rows.num_rows else 0
        pieces = max(-(-size // _CHUNK_BYTES), min(self.workers, size // _MIN_PIECE_BYTES))
        step = -(-rows.num_rows // max(pieces, 1))
        for start in range(0, rows.num_rows, step or 1):
            self._writes.append(self._pool.submit(self._write_now, rows.slice(start, step)))

    def _throttle(self) -> None:
        """Wait until fewer than `workers` writes are still to finish. Rows queued for writing
        are held in memory, so when writing is slower than reading (every file of the table
        rewritten) the reads must wait for it: memory then stays at a few chunks in flight,
        not the whole rewritten table."""
        unfinished = [f for f in self._writes if not f.done()]
        for future in unfinished[: max(0, len(unfinished) - self.workers + 1)]:
            future.exception()  # waits; an error is raised where the results are collected

    def _write_now(self, rows: pa.Table) -> list[DataFile]:
        if self.meta.spec().is_unpartitioned() and rows.num_rows:
            # as a spilled event writes: mostly-distinct columns without a dictionary, which
            # pyiceberg's writer would build for every column and then abandon (~40% of the CPU)
            return [write_data_file(self.meta, self.io, rows, self._encodings)]
        return list(dataframe_to_data_files(self.meta, rows, self.io, self._uuid, self._counter))

    def discard(self) -> None:
        """Delete what this attempt wrote; nothing references it."""
        for future in self._writes:
            for data_file in future.result() if future.exception() is None else []:
                try:
                    self.io.delete(data_file.file_path)
                except OSError:
                    pass
        self._writes, self._deleted = [], []

    def commit(self, snapshot_properties: dict[str, str], extra: list[DataFile] | None = None) -> None:
        added = [f for future in self._writes for f in future.result()] + (extra or [])
        if not added and not self._deleted and not snapshot_properties:
            return
        # the operation names what the snapshot did, as the Iceberg spec defines them
        operation = Operation.OVERWRITE if added else Operation.DELETE
        producer: SnapshotProducer[Any] = (
            OneReadOverwrite(self.entries, self.tx, self.io, self._uuid, snapshot_properties, operation=operation)
            if self._deleted
            else UpdateSnapshot(self.tx, self.io, snapshot_properties=snapshot_properties).fast_append()
        )
        with producer:
            for data_file in self._deleted:
                producer.delete_data_file(data_file)
            for data_file in added:
                producer.append_data_file(data_file)


def _bounded_map(pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: list[_T], window: int) -> Iterator[_R]:
    """`pool.map` in order, with at most `window` results in flight, so memory stays bounded."""
    futures: list[Future[_R]] = []
    it = iter(items)
    for item in itertools.islice(it, window):
        futures.append(pool.submit(fn, item))
    while futures:
        result = futures.pop(0).result()
        for item in itertools.islice(it, 1):
            futures.append(pool.submit(fn, item))
        yield result

"""Compaction: bin-pack a partition's small data files into target-size files in one `replace` commit.

Which files: live Parquet data files below the small-file size, in the table's current partition
spec, in partitions without delete files (icefloe never writes delete files, other engines may;
rewriting a file would drop the deletes that apply to it, so those partitions are left alone).

Tiered, not greedy: a big file joins a rewrite only when the files merged into it are at least
as big as it is. Re-packing one growing file with every trickle of new small files would rewrite
the whole partition on every run; this way every byte is rewritten at most log2(N) times.

Races: commits go without pyiceberg's retry (`compat.transaction`): a conflict comes back here. On a
conflict the table is reloaded (under `exclusive`, when the caller gives one); a bin whose inputs
are all still live is committed again with the same output files (a racing append changes nothing for it), a bin that lost an input to a racing
delete or replace is dropped and its output deleted. Rows are never lost or doubled: a bin's
output replaces exactly its inputs, in one snapshot, or not at all.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar, cast

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntry
from pyiceberg.schema import sanitize_column_names
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.typedef import Record

from icefloe.errors import ConfigError
from icefloe.lake.compat import to_requested_schema, transaction
from icefloe.lake.maintain_files import as_replace, delete_files, delete_partitions, live_entries
from icefloe.lake.upsert_commit import OneReadOverwrite

__all__ = ["plan_bins", "compact", "CompactionResult", "Exclusive", "run_exclusive"]

# a lock around one commit, shared with the caller's own committer (see `compact`)
Exclusive = Callable[[], AbstractContextManager[object]]
_T = TypeVar("_T")

log = logging.getLogger(__name__)

ATTEMPTS = 6
# rows are handed to the Parquet writer in slices of about this many Arrow bytes, so a bin of
# thousands of tiny files still becomes a few large row groups, not one row group per input
_SLICE_BYTES = 64 << 20

# called with the attempt number just before each commit; tests use it to land a racing commit
_before_commit: Callable[[int], None] | None = None


@dataclass
class CompactionResult:
    table: Table
    files_compacted: int = 0
    files_written: int = 0
    snapshot_id: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Bin:
    inputs: list[DataFile]
    outputs: list[DataFile] = field(default_factory=list)


class _ReplaceFiles(OneReadOverwrite):
    """An overwrite producer (drop these files, add those), recorded as a `replace`. It reads each
    manifest once, and none that the plan or an earlier attempt read: after a lost race only the
    racing commits' manifests are new, and this commit runs while the committer waits for it."""

    def _summary(self, snapshot_properties: dict[str, str] | None = None) -> Summary:
        return as_replace(super()._summary(snapshot_properties or {}), "compact")


def _tiered(files: list[DataFile]) -> list[DataFile]:
    """Drop the largest file while it outweighs all the smaller ones together."""
    ordered = sorted(files, key=lambda f: f.file_size_in_bytes, reverse=True)
    rest = sum(f.file_size_in_bytes for f in ordered)
    while ordered and ordered[0].file_size_in_bytes > rest - ordered[0].file_size_in_bytes:
        rest -= ordered.pop(0).file_size_in_bytes
    return ordered


def _pack(files: list[DataFile], target: int) -> list[list[DataFile]]:
    """First-fit decreasing into bins of at most `target` input bytes; lone files stay as they are."""
    bins: list[list[DataFile]] = []
    room: list[int] = []
    for f in sorted(files, key=lambda f: f.file_size_in_bytes, reverse=True):
        for i, free in enumerate(room):
            if f.file_size_in_bytes <= free:
                bins[i].append(f)
                room[i] -= f.file_size_in_bytes
                break
        else:
            bins.append([f])
            room.append(target - f.file_size_in_bytes)
    return [b for b in bins if len(b) > 1]


def plan_bins(
    table: Table, *, target: int, small: int, min_files: int, known: dict[str, list[ManifestEntry]] | None = None
) -> tuple[list[list[DataFile]], list[str]]:
    """The bins to rewrite (each becomes one file) and notes on what was left alone and why.
    `known`: manifest entries already read, by manifest path (see `live_entries`)."""
    data, deletes = live_entries(table, known=known)
    blocked = delete_partitions(deletes)
    spec_id = table.metadata.default_spec_id
    # a delete file of an unpartitioned spec applies to every partition
    blocked_all = any(table.metadata.specs()[s].is_unpartitioned() for s, _ in blocked)
    groups: dict[Record, list[DataFile]] = defaultdict(list)
    skipped = {"deletes": 0, "spec": 0, "format": 0}
    for entry in data:
        f = entry.data_file
        if f.file_size_in_bytes >= small:
            continue
        if f.file_format != FileFormat.PARQUET:
            skipped["format"] += 1
        elif f.spec_id != spec_id:
            skipped["spec"] += 1
        elif blocked_all or (f.spec_id, f.partition) in blocked:
            skipped["deletes"] += 1
        else:
            groups[f.partition].append(f)
    bins: list[list[DataFile]] = []
    for files in groups.values():
        chosen = _tiered(files)
        if len(chosen) >= max(min_files, 2):
            bins += _pack(chosen, target)
    notes = []
    if skipped["deletes"]:
        notes.append(f"compact: {skipped['deletes']} small files left alone: their partitions have delete files")
    if skipped["spec"]:
        notes.append(f"compact: {skipped['spec']} small files of an older partition spec left alone")
    if skipped["format"]:
        notes.append(f"compact: {skipped['format']} small non-Parquet files left alone")
    return bins, notes


def _slices(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += batch.nbytes
        if size >= _SLICE_BYTES:
            yield pa.Table.from_batches(pending)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _write_bin(table: Table, inputs: list[DataFile], sort_by: tuple[str, ...]) -> DataFile:
    """Read the inputs through pyiceberg (so older files are projected onto the current schema)
    and stream them into one Parquet file."""
    metadata = table.metadata
    schema = metadata.schema()
    file_schema = sanitize_column_names(schema)
    scan = ArrowScan(metadata, table.io, schema, AlwaysTrue())
    tasks = [FileScanTask(f) for f in inputs]
    batches: Iterable[pa.RecordBatch]
    if sort_by:
        batches = scan.to_table(tasks).sort_by([(c, "ascending") for c in sort_by]).to_batches()
    else:
        batches = scan.to_record_batches(tasks)
    # next to the inputs keeps the partition folder; files added from outside the table's data
    # path (add_files) must not get company there
    folder = os.path.dirname(inputs[0].file_path)
    data_path = table.location_provider().data_path
    path = f"{folder if folder.startswith(data_path) else data_path}/icefloe-compact-{uuid.uuid4()}.parquet"
    output = table.io.new_output(path)
    parquet = FileFormatFactory.get(FileFormat.PARQUET)
    writer = parquet.create_writer(output, file_schema, metadata.properties)
    try:
        for piece in _slices(batches):
            # with field ids, as pyiceberg's own writer does: readers resolve columns by id
            converted = [
                to_requested_schema(file_schema, schema, b, include_field_ids=True, format_model=parquet)
                for b in piece.combine_chunks().to_batches()
            ]
            writer.write(pa.Table.from_batches(converted))
        stats = writer.close()
    except BaseException:
        delete_files(table.io, {path: 0})
        raise
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=inputs[0].partition,
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=inputs[0].spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


def _still_valid(table: Table, bins: list[_Bin], known: dict[str, list[ManifestEntry]] | None = None) -> tuple[list[_Bin], list[_Bin]]:
    """(bins whose inputs are all still live and free of deletes, bins that lost that)."""
    data, deletes = live_entries(table, known=known)
    live = {e.data_file.file_path for e in data}
    blocked = delete_partitions(deletes)
    ok: list[_Bin] = []
    lost: list[_Bin] = []
    for b in bins:
        fine = all(f.file_path in live for f in b.inputs) and (b.inputs[0].spec_id, b.inputs[0].partition) not in blocked
        (ok if fine else lost).append(b)
    return ok, lost


def _only_appends_since(table: Table, snapshot_id: int | None) -> bool:
    """Did every commit after `snapshot_id` only add data files? Then every input is still live
    and no delete file came: known from the snapshot summaries, without reading a manifest."""
    current = table.current_snapshot()
    while current is not None and current.snapshot_id != snapshot_id:
        summary = current.summary
        if summary is None or summary.operation != Operation.APPEND:
            return False
        if any(int(summary[k] or 0) for k in ("deleted-data-files", "added-delete-files", "removed-delete-files")):
            return False
        parent = current.parent_snapshot_id
        current = table.snapshot_by_id(parent) if parent is not None else None
    return current is not None or snapshot_id is None


def _recheck(table: Table, bins: list[_Bin], since: int | None, known: dict[str, list[ManifestEntry]]) -> tuple[list[_Bin], list[_Bin]]:
    """`_still_valid` on fresh metadata, which reads every manifest; when only appends came
    since the last check (the usual race: this worker's own committer) the summaries suffice.
    It runs while the committer waits (`exclusive`), so it must be cheap."""
    if _only_appends_since(table, since):
        return bins, []
    return _still_valid(table, bins, known)


def _head(table: Table) -> int | None:
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot is not None else None


def _discard(table: Table, bins: list[_Bin]) -> None:
    delete_files(table.io, {f.file_path: f.file_size_in_bytes for b in bins for f in b.outputs})


@dataclass
class _Attempt:
    table: Table
    bins: list[_Bin]
    checked: int | None  # the snapshot the bins' inputs are known live in


def run_exclusive(exclusive: Exclusive, fn: Callable[[], _T]) -> _T:
    """`fn()` while holding `exclusive`. A gate with a `run` method runs it itself: the
    maintenance process's runs it on a thread at the committer's priority, as the committer
    waits for it (engine.maintenance_process)."""
    runner = getattr(exclusive, "run", None)
    if runner is not None:
        return cast(_T, runner(fn))
    with exclusive():
        return fn()


def _commit_bins(
    catalog: Catalog, identifier: str, state: _Attempt, attempt: int, known: dict[str, list[ManifestEntry]], result: CompactionResult
) -> str:
    """One commit attempt of the bins: "committed", "conflict", or "nothing" left to commit."""
    if attempt:  # on fresh metadata: a bin that lost an input to the racing commit goes
        state.table = catalog.load_table(identifier)
        state.bins, lost = _recheck(state.table, state.bins, state.checked, known)
        state.checked = _head(state.table)
        if lost:
            _discard(state.table, lost)
            result.notes.append(f"compact: {len(lost)} bins dropped, a racing commit removed their inputs")
        if not state.bins:
            return "nothing"
    if _before_commit is not None:
        _before_commit(attempt)
    tx = transaction(state.table)
    replace = _ReplaceFiles(known, tx, state.table.io, operation=Operation.OVERWRITE)
    for b in state.bins:
        for f in b.inputs:
            replace.delete_data_file(f)
        for f in b.outputs:
            replace.append_data_file(f)
    # only a conflict is known not to have landed; any other error propagates and leaves the
    # outputs to orphan removal, because that commit may have landed after all
    try:
        replace.commit()
        state.table = tx.commit_transaction()
    except (CommitFailedException, ValidationException) as exc:
        log.info("%s: compaction commit conflict (%s), checking inputs", identifier, exc)
        return "conflict"
    return "committed"


def compact(
    catalog: Catalog,
    identifier: str,
    table: Table,
    *,
    target: int,
    small: int,
    min_files: int,
    sort_by: tuple[str, ...] = (),
    dry_run: bool = False,
    exclusive: Exclusive | None = None,
) -> CompactionResult:
    """`exclusive()`: a lock the caller's own committer also takes around its commits. Taken for
    every attempt after a lost race, so against a steady stream of commits the rewrite still goes
    in (on its second attempt) instead of losing every race; a commit then waits for one
    compaction commit, never for the run."""
    if missing := [c for c in sort_by if c not in {f.name for f in table.schema().fields}]:
        raise ConfigError(f"{identifier}: cannot sort compacted files by {missing[0]!r}: no such column")
    known: dict[str, list[ManifestEntry]] = {}  # every attempt's commit reads only the manifests new to it
    planned, notes = plan_bins(table, target=target, small=small, min_files=min_files, known=known)
    result = CompactionResult(table, notes=notes)
    if dry_run or not planned:
        result.files_compacted = sum(len(b) for b in planned)
        result.files_written = len(planned)
        return result
    bins = [_Bin(inputs) for inputs in planned]
    try:
        for b in bins:
            b.outputs.append(_write_bin(table, b.inputs, sort_by))
            rows_in = sum(f.record_count for f in b.inputs)
            if b.outputs[0].record_count != rows_in:  # would mean a reader bug: never commit it
                raise RuntimeError(f"compaction read {b.outputs[0].record_count} rows from files holding {rows_in}")
    except BaseException:
        _discard(table, bins)
        raise
    state = _Attempt(table, bins, _head(table))  # the inputs are known live in that snapshot
    for attempt in range(ATTEMPTS):
        if exclusive is not None and attempt:
            outcome = run_exclusive(exclusive, partial(_commit_bins, catalog, identifier, state, attempt, known, result))
        else:
            outcome = _commit_bins(catalog, identifier, state, attempt, known, result)
        table, bins = state.table, state.bins
        if outcome == "conflict":
            time.sleep(0 if exclusive is not None else min(0.02 * 2**attempt, 0.5))
            continue
        result.table = table
        if outcome == "nothing":
            return result
        snapshot = table.current_snapshot()
        result.snapshot_id = snapshot.snapshot_id if snapshot else None
        result.files_compacted = sum(len(b.inputs) for b in bins)
        result.files_written = sum(len(b.outputs) for b in bins)
        return result
    _discard(table, bins)
    result.table = table
    result.notes.append(f"compact: gave up after {ATTEMPTS} commit conflicts; nothing rewritten")
    return result

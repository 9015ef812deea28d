"""Commit staged event outputs to one Iceberg table, exactly once.

The ids of the events in a commit go into that snapshot's summary (`icefloe.events`, or for a
large batch a file the summary names: `lake.events`) in the same atomic metadata swap. Before every attempt the writer re-reads the table and drops events whose ids
already appear in its history, so a crash between commit and ledger update, a lease that expired
under a slow worker, or a second delivery never writes the same event twice. Conflicts with other
writers surface from the catalog's compare-and-swap and are retried on fresh metadata.

One commit batch is one snapshot, whatever the mode: the rows an event replaces (replace_source,
overwrite, upsert) leave the table in the same snapshot its rows arrive in, so no reader, nor any
engine's time travel, sees a state in between.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Operation

from icefloe.config import WriteConfig
from icefloe.errors import CommitConflictError
from icefloe.lake.compat import RETRY_PROPERTY, dataframe_to_data_files, transaction, transaction_io
from icefloe.lake.events import EVENTS_PROPERTY, event_summary
from icefloe.lake.evolve import align_to_table, apply_partition_spec, evolve_schema, nullable
from icefloe.lake.history import committed_event_ids
from icefloe.lake.maintain_files import BOUNDED_METADATA_PROPERTIES
from icefloe.lake.stream import DataFileStream
from icefloe.lake.upsert import delete_keys, upsert
from icefloe.lake.upsert_commit import LiveOverwrite
from icefloe.pipelines.dedupe import keep_last_by_key

__all__ = ["Staged", "TableWriter", "committed_event_ids", "EVENTS_PROPERTY", "SOURCE_COLUMN", "EVENT_COLUMN"]

EVENT_COLUMN, SOURCE_COLUMN, INGESTED_COLUMN = "_icefloe_event", "_icefloe_source", "_icefloe_ingested_at"


@dataclass
class Staged:
    """One event's rows, ready to commit. `data` already carries the _icefloe_* columns."""

    event_id: str
    source_ref: str
    data: pa.Table
    landed_at: float = 0.0
    # data files already written (via `TableWriter.stream`) for rows that did not fit in memory
    files: list[DataFile] = field(default_factory=list)
    # delete the rows of `source_ref` the table already holds, in the snapshot that adds these
    # (always so in replace_source mode; in append mode for a changed version of an object)
    replaces_source: bool = False
    # the ledger's landing sequence: the landing order across hosts (landed_at is one clock's)
    seq: int = 0


class TableWriter:
    """One committer per table per process: create on first write, evolve, commit with CAS retry."""

    def __init__(self, catalog: Catalog, config: WriteConfig, *, max_conflict_retries: int = 8) -> None:
        self.catalog, self.config = catalog, config
        self.identifier = config.table
        self.max_conflict_retries = max_conflict_retries
        self.last_table: Table | None = None

    def load(self) -> Table | None:
        try:
            return self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            return None

    def _create(self, schema: pa.Schema) -> Table:
        namespace = self.identifier.rsplit(".", 1)[0]
        try:
            self.catalog.create_namespace(namespace)
        except NamespaceAlreadyExistsError:
            pass
        except Exception:
            # two writers creating their first tables at once (a parent and its child table,
            # streaming on two threads): the SQL catalog's loser sees a unique-key violation
            if not self.catalog.namespace_exists(namespace):
                raise
        # pyiceberg's own commit retry is off in `compat.transaction`, not in the table's
        # properties: other engines writing this table read those too
        table = self.catalog.create_table_if_not_exists(
            self.identifier, schema=nullable(schema), properties=dict(BOUNDED_METADATA_PROPERTIES)
        )
        if self.config.partition and table.spec().is_unpartitioned():
            apply_partition_spec(table, self.config.partition)
            table = self.catalog.load_table(self.identifier)
        return table

    def stream(self, source: str | None = None) -> DataFileStream:
        """A writer for one event's rows ahead of its commit (append and replace_source only);
        `source` names the event's object in schema errors."""
        if self.config.mode not in ("append", "replace_source"):
            raise ValueError(f"cannot pre-write files in {self.config.mode} mode")
        def open_table(schema: pa.Schema) -> Table:
            return self.load() or self._create(schema)

        return DataFileStream(open_table, self.identifier, evolution=self.config.schema_evolution, source=source)

    def discard(self, files: list[DataFile]) -> None:
        """Delete data files written ahead for an event that will not commit them."""
        table = self.load() if files else None
        for data_file in files if table is not None else []:
            try:
                table.io.delete(data_file.file_path)  # type: ignore[union-attr]
            except OSError:
                pass

    def commit(
        self, staged: list[Staged], on_conflict: Callable[[int], None] | None = None, *, table: Table | None = None
    ) -> tuple[int | None, list[str]]:
        """Commit what is not yet in the table. Returns (snapshot id, ids newly committed).

        `table` is a just-loaded copy to start from (saves a catalog round trip); any conflict
        reloads it, so a stale copy costs a retry, never correctness."""
        for attempt in range(self.max_conflict_retries + 1):
            if attempt or table is None:
                table = self.load()
            table = table or self._create(staged[0].data.schema)
            done = committed_event_ids(table)
            todo = [s for s in staged if s.event_id not in done]
            if not todo:
                return None, []
            try:
                snapshot_id = self._commit_once(table, todo)
                self.last_table = table  # pyiceberg refreshed it in place: the maintainer reads it
                return snapshot_id, [s.event_id for s in todo]
            except CommitFailedException:
                if on_conflict:
                    on_conflict(attempt + 1)
                # the first retry goes at once (a few ms of jitter keeps racing workers apart): the
                # usual winner is a maintenance commit, done before we reload, and a file whose
                # commit slept 50 ms for it was 3x the median (bench 8); contention backs off
                time.sleep(random.uniform(0, 0.005) if attempt == 0 else min(0.05 * 2 ** (attempt - 1), 1.0))
        raise CommitConflictError(f"{self.identifier}: gave up after {self.max_conflict_retries} commit conflicts")

    def _commit_once(self, table: Table, todo: list[Staged]) -> int | None:
        mode = self.config.mode
        superseded: list[DataFile] = []
        replaced: list[str] = []
        if mode in ("replace_source", "overwrite", "append"):
            kept = _latest_per(todo, mode)
            superseded = [f for old, new in zip(todo, kept, strict=True) if new is not old for f in old.files]
            todo = kept
            if mode != "overwrite":
                replaced = sorted({s.source_ref for s in todo if s.replaces_source or mode == "replace_source"})
        data = pa.concat_tables([s.data for s in todo], promote_options="permissive")
        props, events_file = event_summary(table, [s.event_id for s in todo])
        prewritten = [f for s in todo for f in s.files]
        try:
            self._transact(table, data, mode, replaced, prewritten, props)
        except BaseException:
            if events_file is not None:  # the snapshot naming it did not land
                table.io.delete(events_file)
            raise
        for data_file in superseded:  # written ahead for a version a newer one replaced in this batch
            table.io.delete(data_file.file_path)
        snapshot = table.current_snapshot()
        return snapshot.snapshot_id if snapshot else None

    def _transact(
        self, table: Table, data: pa.Table, mode: str, replaced: list[str], prewritten: list[DataFile], props: dict[str, str]
    ) -> None:
        # schema change and data land in one transaction: readers never see one without the other
        with transaction(table) as tx:
            if table.properties.get(RETRY_PROPERTY) == "0":
                # earlier icefloe versions set it on every table they created; other engines honour it
                tx.remove_properties(RETRY_PROPERTY)
            evolve_schema(tx, table.schema(), data.schema, self.identifier, evolution=self.config.schema_evolution)
            data = align_to_table(data, tx.table_metadata.schema())
            if replaced:
                # the old rows of these objects go in the snapshot that adds their new rows
                sources = pa.table({SOURCE_COLUMN: pa.array(replaced, pa.large_string())})
                delete_keys(tx, sources, [SOURCE_COLUMN], snapshot_properties=props, add=data, add_files=prewritten)
            elif mode == "overwrite":
                _replace_all(tx, data, prewritten, props)
            elif mode == "append":
                with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
                    for data_file in prewritten:
                        append.append_data_file(data_file)
                    if data.num_rows:
                        for data_file in dataframe_to_data_files(tx.table_metadata, data, table.io, append.commit_uuid):
                            append.append_data_file(data_file)
            else:
                # one row per key, the newest landed wins; only files holding the keys are rewritten
                data = keep_last_by_key(data, self.config.key)
                upsert(tx, data, self.config.key, snapshot_properties=props)


def _replace_all(tx: Transaction, data: pa.Table, prewritten: list[DataFile], props: dict[str, str]) -> None:
    """Overwrite: every live data file out, the batch's rows in, in one snapshot.

    pyiceberg's `Transaction.overwrite` commits a delete snapshot and then an append snapshot,
    and the empty table between them is a state time travel would show."""
    snapshot = tx.table_metadata.current_snapshot()
    live = [
        entry.data_file
        for manifest in (snapshot.manifests(transaction_io(tx)) if snapshot else [])
        if manifest.content == ManifestContent.DATA
        for entry in manifest.fetch_manifest_entry(transaction_io(tx), discard_deleted=True)
    ]
    if not live:
        operation = Operation.APPEND
    else:
        operation = Operation.OVERWRITE if data.num_rows or prewritten else Operation.DELETE
    with LiveOverwrite(operation, tx, transaction_io(tx), snapshot_properties=props) as overwrite:
        for data_file in live:
            overwrite.delete_data_file(data_file)
        for data_file in prewritten:
            overwrite.append_data_file(data_file)
        if data.num_rows:
            for data_file in dataframe_to_data_files(tx.table_metadata, data, transaction_io(tx), overwrite.commit_uuid):
                overwrite.append_data_file(data_file)


def _latest_per(staged: list[Staged], mode: str) -> list[Staged]:
    """What each event adds once the batch's replacements are applied, in the order given.

    Overwrite keeps only the newest event; replace_source the newest per source object; in append
    mode an event that replaces its source drops the events of that source landed before it.
    The superseded events still count as committed (their ids go into the summary) because the
    table state is exactly what it would be had they been committed one by one.
    """
    def group(s: Staged) -> str:
        return "" if mode == "overwrite" else s.source_ref

    # the newest replacing event per group, ties to the later one in the batch
    newest: dict[str, tuple[int, float, int]] = {}
    for at, s in enumerate(staged):
        replacing = mode != "append" or s.replaces_source
        if replacing and (group(s) not in newest or (s.seq, s.landed_at, at) >= newest[group(s)]):
            newest[group(s)] = (s.seq, s.landed_at, at)
    # same order as given, so callers can pair each input with what became of it
    return [s if newest.get(group(s), (-1, -1.0, -1)) <= (s.seq, s.landed_at, at) else _empty_like(s) for at, s in enumerate(staged)]


def _empty_like(staged: Staged) -> Staged:
    return Staged(staged.event_id, staged.source_ref, staged.data.slice(0, 0), staged.landed_at, seq=staged.seq)


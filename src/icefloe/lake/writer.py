"""Commit staged event outputs to one Iceberg table, exactly once.

The ids of the events in a commit go into that snapshot's summary (`icefloe.events`) in the same
atomic metadata swap. Before every attempt the writer re-reads the table and drops events whose ids
already appear in its history, so a crash between commit and ledger update, a lease that expired
under a slow worker, or a second delivery never writes the same event twice. Conflicts with other
writers surface from the catalog's compare-and-swap and are retried on fresh metadata.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.expressions import In
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from icefloe.config import WriteConfig
from icefloe.errors import CommitConflictError
from icefloe.lake.evolve import align_to_table, apply_partition_spec, evolve_schema, nullable
from icefloe.lake.maintain_files import BOUNDED_METADATA_PROPERTIES
from icefloe.lake.stream import DataFileStream
from icefloe.lake.upsert import upsert
from icefloe.pipelines.dedupe import keep_last_by_key

__all__ = ["Staged", "TableWriter", "committed_event_ids", "EVENTS_PROPERTY", "SOURCE_COLUMN", "EVENT_COLUMN"]

EVENTS_PROPERTY = "icefloe.events"
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
    # delete rows of this source_ref already in the table in the same snapshot as adding its
    # rows (append mode: a new version of an object replaces the rows its earlier one brought)
    replaces_source: bool = False


def committed_event_ids(table: Table) -> dict[str, int]:
    """Event id -> id of the snapshot that committed it, from the table's own history."""
    ids: dict[str, int] = {}
    for snapshot in table.metadata.snapshots:
        value = snapshot.summary[EVENTS_PROPERTY] if snapshot.summary else None
        if value:
            ids.update(dict.fromkeys(value.split(","), snapshot.snapshot_id))
    return ids


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
        # pyiceberg's own commit retry would re-apply our append on top of whatever won the race,
        # skipping the event-id check below; conflicts must come back to us instead
        properties = {"commit.retry.num-retries": "0", **BOUNDED_METADATA_PROPERTIES}
        table = self.catalog.create_table_if_not_exists(self.identifier, schema=nullable(schema), properties=properties)
        if self.config.partition and table.spec().is_unpartitioned():
            apply_partition_spec(table, self.config.partition)
            table = self.catalog.load_table(self.identifier)
        return table

    def stream(self) -> DataFileStream:
        """A writer for one event's rows ahead of its commit (append and replace_source only)."""
        if self.config.mode not in ("append", "replace_source"):
            raise ValueError(f"cannot pre-write files in {self.config.mode} mode")
        return DataFileStream(lambda schema: self.load() or self._create(schema), self.identifier)

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
                time.sleep(min(0.05 * 2**attempt, 1.0))
        raise CommitConflictError(f"{self.identifier}: gave up after {self.max_conflict_retries} commit conflicts")

    def _commit_once(self, table: Table, todo: list[Staged]) -> int | None:
        mode = self.config.mode
        superseded: list[DataFile] = []
        replacing = {s.source_ref for s in todo if s.replaces_source} if mode == "append" else set()
        if mode in ("replace_source", "overwrite") or replacing:
            kept = _latest_per(todo, by_source=mode != "overwrite")
            if replacing:  # only the objects that changed: other events append as they are
                kept = [new if old.source_ref in replacing else old for old, new in zip(todo, kept, strict=True)]
            superseded = [f for old, new in zip(todo, kept, strict=True) if new is not old for f in old.files]
            todo = kept
        data = pa.concat_tables([s.data for s in todo], promote_options="permissive")
        props = {EVENTS_PROPERTY: ",".join(s.event_id for s in todo)}
        prewritten = [f for s in todo for f in s.files]
        # schema change and data land in one transaction: readers never see one without the other
        with warnings.catch_warnings(), table.transaction() as tx:
            # replacing rows of an object landing for the first time deletes nothing: not news
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            evolve_schema(tx, table.schema(), data.schema, self.identifier)
            data = align_to_table(data, tx.table_metadata.schema())
            if mode == "replace_source" or replacing:
                refs = replacing or {s.source_ref for s in todo}
                tx.delete(In(SOURCE_COLUMN, sorted(refs)), snapshot_properties=props)  # type: ignore[call-arg, arg-type]
            if prewritten:
                with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
                    for data_file in prewritten:
                        append.append_data_file(data_file)
                    if data.num_rows:
                        for data_file in _dataframe_to_data_files(tx.table_metadata, data, table.io, append.commit_uuid):
                            append.append_data_file(data_file)
            elif mode in ("append", "replace_source"):
                tx.append(data, snapshot_properties=props)
            elif mode == "overwrite":
                tx.overwrite(data, snapshot_properties=props)
            else:
                # one row per key, the newest landed wins; only files holding the keys are rewritten
                data = keep_last_by_key(data, self.config.key)
                upsert(tx, data, self.config.key, snapshot_properties=props)
        for data_file in superseded:  # written ahead for a version a newer one replaced in this batch
            table.io.delete(data_file.file_path)
        snapshot = table.current_snapshot()
        return snapshot.snapshot_id if snapshot else None


def _latest_per(staged: list[Staged], *, by_source: bool) -> list[Staged]:
    """Overwrite keeps only the newest event; replace_source the newest event per source object.

    The superseded events still count as committed (their ids go into the summary) because the
    table state is exactly what it would be had they been committed one by one.
    """
    def group(s: Staged) -> str:
        return s.source_ref if by_source else ""

    newest: dict[str, Staged] = {}
    for s in staged:
        if group(s) not in newest or s.landed_at >= newest[group(s)].landed_at:
            newest[group(s)] = s
    # same order as given, so callers can pair each input with what became of it
    return [s if newest[group(s)] is s else _empty_like(s) for s in staged]


def _empty_like(staged: Staged) -> Staged:
    return Staged(staged.event_id, staged.source_ref, staged.data.slice(0, 0), staged.landed_at)


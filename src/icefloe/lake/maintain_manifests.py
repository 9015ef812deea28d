"""Manifest rewrite: the current snapshot's live entries in a few manifests, data unchanged.

Every fast append adds one manifest and lists all earlier ones again, so a table fed by small
commits plans (and commits) through a manifest list that grows by one entry per commit. The
rewrite is one `replace` snapshot whose data manifests hold every live entry as EXISTING, with
its original snapshot id and sequence numbers, so readers and delete files see the same table.
Delete-file manifests pass through untouched.

Merge-append (`commit.manifest-merge.enabled`) would do this inside ordinary commits instead,
but it rewrites the merged manifest in whichever commit crosses the threshold, which puts the
cost on an event's latency; here it lands on the maintenance run.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import ManifestContent, ManifestEntry, ManifestFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.utils.properties import property_as_int

from icefloe.lake.compat import SnapshotProducer, transaction
from icefloe.lake.maintain_compact import Exclusive, run_exclusive
from icefloe.lake.maintain_files import as_replace

__all__ = ["rewrite_manifests", "ManifestResult"]

ATTEMPTS = 6


@dataclass
class ManifestResult:
    table: Table
    before: int = 0
    after: int = 0
    snapshot_id: int | None = None
    notes: list[str] = field(default_factory=list)


def _partition_key(entry: ManifestEntry) -> tuple[tuple[bool, object], ...]:
    # nulls last; within one spec every position holds one type, so the rest compares
    partition = entry.data_file.partition
    values = [partition[i] for i in range(len(partition))]
    return tuple((v is None, 0 if v is None else v) for v in values)


class _RewriteManifests(SnapshotProducer["_RewriteManifests"]):
    def _deleted_entries(self) -> list[ManifestEntry]:
        return []

    def _existing_manifests(self) -> list[ManifestFile]:
        parent = self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id or -1)
        if parent is None:
            return []
        target = property_as_int(
            self._transaction.table_metadata.properties,
            TableProperties.MANIFEST_TARGET_SIZE_BYTES,
            TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT,
        ) or TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT
        entries: dict[int, list[ManifestEntry]] = defaultdict(list)
        sizes: dict[int, int] = defaultdict(int)
        untouched = []
        for manifest in parent.manifests(self._io):
            if manifest.content != ManifestContent.DATA:
                untouched.append(manifest)
                continue
            entries[manifest.partition_spec_id] += manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            sizes[manifest.partition_spec_id] += manifest.manifest_length
        written = []
        for spec_id, spec_entries in entries.items():
            if not spec_entries:
                continue
            # entries sorted by partition give each manifest a narrow partition range to prune on
            spec_entries.sort(key=_partition_key)
            per = math.ceil(len(spec_entries) / max(1, math.ceil(sizes[spec_id] / target)))
            for start in range(0, len(spec_entries), per):
                with self.new_manifest_writer(self.spec(spec_id)) as writer:
                    for entry in spec_entries[start : start + per]:
                        writer.existing(entry)
                written.append(writer.to_manifest_file())
        return written + untouched

    def _summary(self, snapshot_properties: dict[str, str] | None = None) -> Summary:
        return as_replace(super()._summary(snapshot_properties or {}), "manifests")


def _attempt(
    catalog: Catalog, identifier: str, table: Table, attempt: int, max_manifests: int, dry_run: bool
) -> tuple[str, ManifestResult]:
    """One attempt: "done" (rewritten, or nothing to do) or "conflict" (a lost race; the result
    holds the table it started from)."""
    if attempt:
        table = catalog.load_table(identifier)
    snapshot = table.current_snapshot()
    manifests = snapshot.manifests(table.io) if snapshot else []
    result = ManifestResult(table, len(manifests), len(manifests))
    if len(manifests) <= max_manifests:
        return "done", result
    if dry_run:
        data_specs = {m.partition_spec_id for m in manifests if m.content == ManifestContent.DATA}
        result.after = len(data_specs) + sum(m.content != ManifestContent.DATA for m in manifests)
        return "done", result
    tx = transaction(table)
    try:
        _RewriteManifests(operation=Operation.OVERWRITE, transaction=tx, io=table.io).commit()
        table = tx.commit_transaction()
    except CommitFailedException:
        return "conflict", result
    current = table.current_snapshot()
    result.table = table
    result.snapshot_id = current.snapshot_id if current else None
    result.after = len(current.manifests(table.io)) if current else 0
    return "done", result


def rewrite_manifests(
    catalog: Catalog, identifier: str, table: Table, *, max_manifests: int, dry_run: bool = False, exclusive: Exclusive | None = None
) -> ManifestResult:
    """`exclusive`: as for `compact`, taken for every attempt after a lost race."""
    for attempt in range(ATTEMPTS):
        attempt_once = partial(_attempt, catalog, identifier, table, attempt, max_manifests, dry_run)
        outcome, result = run_exclusive(exclusive, attempt_once) if exclusive is not None and attempt else attempt_once()
        table = result.table
        if outcome == "done":
            return result
        time.sleep(0 if exclusive is not None else min(0.02 * 2**attempt, 0.5))
    count = len(table.current_snapshot().manifests(table.io)) if table.current_snapshot() else 0  # type: ignore[union-attr]
    return ManifestResult(table, count, count, notes=[f"manifests: gave up after {ATTEMPTS} commit conflicts"])

"""What a table's metadata references, and deleting what it no longer does (shared by maintenance).

Every maintenance action needs the same walk: snapshot -> manifest list -> manifests -> data and
delete files. Manifests are shared by many snapshots (each fast append lists all earlier ones
again), so the walk reads each manifest once, keyed by path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFileContent, ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.typedef import Record

__all__ = [
    "BOUNDED_METADATA_PROPERTIES",
    "MAINTENANCE_PROPERTY",
    "Reach",
    "Walk",
    "reach",
    "live_entries",
    "delete_partitions",
    "file_size",
    "delete_files",
    "as_replace",
    "manifests_of",
]

log = logging.getLogger(__name__)

# set in the summary of every snapshot maintenance writes, so counters and `history` can tell
# a compaction or manifest rewrite from a commit that brought events
MAINTENANCE_PROPERTY = "icefloe.maintenance"

# Without these every commit leaves its metadata.json behind (each one listing every snapshot:
# quadratic bytes) and the metadata log in each file grows to 100 entries, which pyiceberg
# deep-copies several times per commit. New tables should be created with them; maintenance
# adds them to tables that lack them.
BOUNDED_METADATA_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "5",
}


@dataclass
class Reach:
    """Files referenced from a set of snapshots; sizes are those the metadata records."""

    manifest_lists: dict[str, int] = field(default_factory=dict)  # path -> snapshot id
    manifests: dict[str, int] = field(default_factory=dict)  # path -> bytes
    files: dict[str, int] = field(default_factory=dict)  # data or delete file path -> bytes (any status)
    live: set[str] = field(default_factory=set)  # of `files`, those some snapshot still reads


class Walk:
    """Reads each manifest list and each manifest of one table at most once."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._lists: dict[str, list[ManifestFile]] = {}
        self._entries: dict[str, list[ManifestEntry]] = {}

    def manifests(self, snapshot: Snapshot) -> list[ManifestFile]:
        if snapshot.manifest_list not in self._lists:
            self._lists[snapshot.manifest_list] = snapshot.manifests(self.table.io)
        return self._lists[snapshot.manifest_list]

    def entries(self, manifest: ManifestFile) -> list[ManifestEntry]:
        if manifest.manifest_path not in self._entries:
            self._entries[manifest.manifest_path] = manifest.fetch_manifest_entry(self.table.io, discard_deleted=False)
        return self._entries[manifest.manifest_path]

    def reach(self, snapshots: Iterable[Snapshot], *, entries: bool = True, skip: Iterable[str] = ()) -> Reach:
        """Walk `snapshots`; `entries=False` stops at the manifests; manifests in `skip` are not read."""
        out = Reach()
        skipped = set(skip)
        for snapshot in snapshots:
            out.manifest_lists[snapshot.manifest_list] = snapshot.snapshot_id
            for manifest in self.manifests(snapshot):
                if manifest.manifest_path in out.manifests:
                    continue
                out.manifests[manifest.manifest_path] = manifest.manifest_length
                if not entries or manifest.manifest_path in skipped:
                    continue
                for entry in self.entries(manifest):
                    path = entry.data_file.file_path
                    out.files[path] = entry.data_file.file_size_in_bytes
                    if entry.status != ManifestEntryStatus.DELETED:
                        out.live.add(path)
        return out


def reach(table: Table, snapshots: Iterable[Snapshot], *, entries: bool = True, skip: Iterable[str] = ()) -> Reach:
    """Everything `snapshots` reference (see `Walk.reach`)."""
    return Walk(table).reach(snapshots, entries=entries, skip=skip)


def live_entries(
    table: Table, snapshot: Snapshot | None = None, known: dict[str, list[ManifestEntry]] | None = None
) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """(data entries, delete-file entries) a reader of `snapshot` (default: current) sees.

    `known`: the live entries of manifests already read, by path, read from and added to (a
    manifest never changes once written)."""
    snapshot = snapshot or table.current_snapshot()
    data: list[ManifestEntry] = []
    deletes: list[ManifestEntry] = []
    for manifest in snapshot.manifests(table.io) if snapshot else []:
        entries = known.get(manifest.manifest_path) if known is not None else None
        if entries is None:
            entries = manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            if known is not None:
                known[manifest.manifest_path] = entries
        for entry in entries:
            is_delete = manifest.content == ManifestContent.DELETES or entry.data_file.content != DataFileContent.DATA
            (deletes if is_delete else data).append(entry)
    return data, deletes


def delete_partitions(deletes: list[ManifestEntry]) -> set[tuple[int, Record]]:
    """(spec id, partition) pairs with delete files: compaction leaves those alone."""
    return {(e.data_file.spec_id, e.data_file.partition) for e in deletes}


def file_size(io: FileIO, path: str) -> int:
    try:
        return len(io.new_input(path))
    except OSError:
        return 0


def delete_files(io: FileIO, sizes: dict[str, int]) -> tuple[int, int, list[str]]:
    """Delete each path; returns (deleted, bytes freed, paths that could not be deleted).

    A file already gone counts as deleted: a crash after some deletes, or a second maintainer,
    must not turn the rest into errors."""
    deleted, freed, failed = 0, 0, []
    for path, size in sizes.items():
        try:
            io.delete(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete %s: %s", path, exc)
            failed.append(path)
            continue
        deleted += 1
        freed += size
    return deleted, freed, failed


def as_replace(summary: Summary, action: str) -> Summary:
    """The same totals under operation `replace`: the rows did not change, only their files.

    pyiceberg computes totals only for append/overwrite/delete; incremental readers (Spark
    streaming, Flink) skip `replace` snapshots but would fail on an `overwrite`."""
    return Summary(Operation.REPLACE, **{**summary.additional_properties, MAINTENANCE_PROPERTY: action})


def manifests_of(table: Table, snapshot: Snapshot | None) -> list[ManifestFile]:
    return snapshot.manifests(table.io) if snapshot else []

"""Orphan-file removal: files under the table's location that no metadata references.

They come from crashes (a data file written ahead for an event that never committed, a
manifest of a commit that lost its race and was killed before cleaning up) and from metadata
files pyiceberg stopped tracking. A file that is unreferenced *now* may belong to a commit in
flight, so only files older than the safety age go; the age must exceed the longest time a
writer can take between writing a file and committing it.

Listing goes through the table's pyarrow filesystem, so S3/GCS/HDFS work as well as local paths.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyarrow.fs import FileInfo, FileSelector, FileSystem, FileType
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from icefloe.lake.events import event_files
from icefloe.lake.maintain_files import reach

__all__ = ["remove_orphans", "OrphanResult", "referenced_paths"]

log = logging.getLogger(__name__)

# written by Hadoop-style catalogs next to the metadata; never referenced, always needed
_KEEP_NAMES = ("version-hint.text",)


@dataclass
class OrphanResult:
    removed: int = 0
    bytes_freed: int = 0
    notes: list[str] = field(default_factory=list)


def referenced_paths(table: Table) -> set[str]:
    """Every file the table's metadata points at, as full locations."""
    metadata = table.metadata
    paths = {table.metadata_location, *(e.metadata_file for e in metadata.metadata_log)}
    paths.update(s.statistics_path for s in metadata.statistics)
    paths.update(s.statistics_path for s in metadata.partition_statistics)
    paths.update(event_files(metadata.snapshots))  # the proof of a large commit (`lake.events`)
    found = reach(table, metadata.snapshots)
    # files a manifest lists as DELETED count too: a kept snapshot older than the delete reads them
    return paths | set(found.manifest_lists) | set(found.manifests) | set(found.files)


def _listing(table: Table, io: PyArrowFileIO) -> Iterator[tuple[FileSystem, FileInfo]]:
    """Files under the table's data and metadata paths only, not its whole location: another
    table's location may sit below this one (a nested namespace, a table called `data`)."""
    locations = table.location_provider()
    for root in dict.fromkeys((locations.data_path, locations.metadata_path)):
        scheme, netloc, path = io.parse_location(root, io.properties)
        fs = io.fs_by_scheme(scheme, netloc)
        for info in fs.get_file_info(FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)):
            yield fs, info


def remove_orphans(table: Table, *, min_age: float, now: float, dry_run: bool = False) -> OrphanResult:
    result = OrphanResult()
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        result.notes.append(f"orphans: skipped, listing needs pyiceberg's PyArrowFileIO (table uses {type(io).__name__})")
        return result
    referenced = {io.parse_location(p, io.properties)[2] for p in referenced_paths(table)}
    cutoff_ns = int((now - min_age) * 1e9)
    for fs, info in _listing(table, io):
        if info.type != FileType.File or info.path in referenced or info.base_name in _KEEP_NAMES:
            continue
        # a filesystem that reports no mtime cannot prove the file is old: keep it
        if info.mtime_ns is None or info.mtime_ns > cutoff_ns:
            continue
        if not dry_run:
            try:
                fs.delete_file(info.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not delete orphan %s: %s", info.path, exc)
                continue
        result.removed += 1
        result.bytes_freed += info.size or 0
    return result

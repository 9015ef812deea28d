"""Which events a snapshot holds: the proof of commit the writer checks before every attempt.

A commit of a few events lists their ids in the snapshot summary (`icefloe.events`), as icefloe
always has. A commit of many (a bulk `run --once`: 100,000 events in a few snapshots) would put
megabytes into the summary, and every later commit copies and parses the whole table metadata
several times until that snapshot expires. Above `INLINE_MAX` ids the list goes into a small
file next to the metadata files instead, and the summary names it (`icefloe.events-file`) with
its count (`icefloe.events-count`). The summary stays a free-form string map: spec-conformant and
readable by any engine; the file is plain JSON.

The proof lives exactly as long as its snapshot: expiry records the events in the ledger first
(`maintain_expire.plan_expiry` reads these lists), then deletes the files with the snapshot's.
icefloe's own orphan sweep keeps the files of live snapshots. Another engine's orphan cleanup
does not know them and may delete one (after its age threshold, three days by default in
Iceberg's `DeleteOrphanFiles`); by then the ledger long records those events as committed, and
the proof is only the second line for a crash between the table commit and the ledger update.
If a file is gone anyway, the ids are taken from the `_icefloe_event` column of the data files
that snapshot added: every event that brought rows is still found; only events with no rows of
their own (empty, or superseded inside their batch) are not, and for those the ledger decides.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable

import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestContent, ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

__all__ = [
    "EVENTS_COUNT_PROPERTY",
    "EVENTS_FILE_PROPERTY",
    "EVENTS_PROPERTY",
    "INLINE_MAX",
    "event_files",
    "event_summary",
    "snapshot_event_ids",
]

log = logging.getLogger(__name__)

EVENTS_PROPERTY = "icefloe.events"
EVENTS_FILE_PROPERTY = "icefloe.events-file"
EVENTS_COUNT_PROPERTY = "icefloe.events-count"
# 100 ids are ~4 KB of summary: what one snapshot may add to every later commit's metadata copies
INLINE_MAX = 100
_FORMAT = "icefloe.events/1"
_EVENT_COLUMN = "_icefloe_event"


def event_summary(table: Table, ids: list[str]) -> tuple[dict[str, str], str | None]:
    """The summary properties that prove these events are in the snapshot, and the path of the
    file written for them (None when inline). The caller deletes the file if the commit fails."""
    if len(ids) <= INLINE_MAX:
        return {EVENTS_PROPERTY: ",".join(ids)}, None
    path = table.location_provider().new_metadata_location(f"icefloe-events-{uuid.uuid4()}.json")
    body = json.dumps({"format": _FORMAT, "events": ids}, separators=(",", ":")).encode()
    with table.io.new_output(path).create(overwrite=False) as out:
        out.write(body)
    return {EVENTS_FILE_PROPERTY: path, EVENTS_COUNT_PROPERTY: str(len(ids))}, path


def event_files(snapshots: Iterable[Snapshot]) -> list[str]:
    """The event-list files these snapshots reference."""
    return [path for s in snapshots if s.summary and (path := s.summary[EVENTS_FILE_PROPERTY])]


def snapshot_event_ids(table: Table, snapshot: Snapshot) -> list[str]:
    """The ids of the events this snapshot committed: inline, from its file, or (file lost) from
    the data files it added."""
    summary = snapshot.summary
    if not summary:
        return []
    inline = summary[EVENTS_PROPERTY]
    if inline:
        return inline.split(",")
    path = summary[EVENTS_FILE_PROPERTY]
    if not path:
        return []
    expected = int(summary[EVENTS_COUNT_PROPERTY] or -1)
    try:
        with table.io.new_input(path).open() as stream:
            body = json.loads(stream.read())
        ids = body["events"] if isinstance(body, dict) and body.get("format") == _FORMAT else None
        if isinstance(ids, list) and len(ids) == expected and all(isinstance(i, str) for i in ids):
            return ids
        log.warning("%s: not the %d event ids snapshot %d lists; reading them from its data files", path, expected, snapshot.snapshot_id)
    except (OSError, ValueError) as exc:
        log.warning("%s (events of snapshot %d) unreadable: %s; reading them from its data files", path, snapshot.snapshot_id, exc)
    return _ids_in_added_files(table, snapshot)


def _ids_in_added_files(table: Table, snapshot: Snapshot) -> list[str]:
    io: FileIO = table.io
    ids: dict[str, None] = {}
    for manifest in snapshot.manifests(io):
        if manifest.content != ManifestContent.DATA or manifest.added_snapshot_id != snapshot.snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
            if entry.status != ManifestEntryStatus.ADDED or entry.snapshot_id != snapshot.snapshot_id:
                continue
            try:
                with io.new_input(entry.data_file.file_path).open() as stream:
                    column = pq.read_table(stream, columns=[_EVENT_COLUMN]).column(0)
            except (OSError, KeyError, ValueError) as exc:  # a file without the column holds no event's rows
                log.warning("%s: no event ids readable: %s", entry.data_file.file_path, exc)
                continue
            ids.update(dict.fromkeys(v for v in column.unique().to_pylist() if v))
    return list(ids)

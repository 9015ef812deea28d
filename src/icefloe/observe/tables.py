"""`tables` and `history`: what the lake holds, and which events each snapshot brought."""

from __future__ import annotations

import time
from typing import Any

from pyiceberg.exceptions import NoSuchTableError

from icefloe.errors import NotFoundError
from icefloe.lake.events import snapshot_event_ids
from icefloe.runtime import Runtime

__all__ = ["list_tables", "history"]


def list_tables(rt: Runtime) -> list[dict[str, Any]]:
    catalog = rt.catalog
    rows = []
    for namespace in catalog.list_namespaces():
        for ident in catalog.list_tables(namespace):
            table = catalog.load_table(ident)
            snapshot = table.current_snapshot()
            summary = snapshot.summary if snapshot else None
            rows.append({
                "table": ".".join(ident),
                "rows": int(summary["total-records"] or 0) if summary else 0,
                "files": int(summary["total-data-files"] or 0) if summary else 0,
                "snapshots": len(table.metadata.snapshots),
                "current_snapshot": snapshot.snapshot_id if snapshot else None,
                "location": table.location(),
            })  # fmt: skip
    return rows


def history(rt: Runtime, name: str) -> list[dict[str, Any]]:
    try:
        table = rt.catalog.load_table(name)
    except NoSuchTableError:
        raise NotFoundError(f"no table {name!r}") from None
    rows = []
    for snapshot in table.metadata.snapshots:
        summary = snapshot.summary
        rows.append({
            "snapshot_id": snapshot.snapshot_id,
            "parent_id": snapshot.parent_snapshot_id,
            "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snapshot.timestamp_ms / 1000)),
            "operation": str(summary.operation.value) if summary else None,
            "added_rows": int(summary["added-records"] or 0) if summary else 0,
            "total_rows": int(summary["total-records"] or 0) if summary else 0,
            "events": snapshot_event_ids(table, snapshot),
        })  # fmt: skip
    return rows

"""Lineage: object -> event -> snapshot -> table, for one table or one object.

A snapshot names the events it committed (the snapshot summary icefloe writes); an event names
its object, table and snapshot. Both directions read only what they show: a table's newest
snapshots, a bounded number of events each."""

from __future__ import annotations

from typing import Any

from icefloe.observe.tables import history
from icefloe.observe.trace import events_for_object
from icefloe.runtime import Runtime

__all__ = ["object_lineage", "table_lineage"]


def table_lineage(rt: Runtime, table: str, *, snapshots: int = 20, events: int = 50) -> list[dict[str, Any]]:
    """The table's newest `snapshots`, each with (up to `events` of) the events it committed and
    the objects they came from; `more` says how many events were left out."""
    rows = []
    for snap in reversed(history(rt, table)[-snapshots:]):
        ids = snap["events"]
        found = [rt.ledger.get(i) for i in ids[:events]]
        rows.append({
            "snapshot_id": snap["snapshot_id"], "committed_at": snap["committed_at"], "operation": snap["operation"],
            "added_rows": snap["added_rows"],
            "events": [
                {"event": i, "object": e.object_ref if e else None, "pipeline": e.pipeline if e else None,
                 "rows_out": e.rows_out if e else None}
                for i, e in zip(ids, found, strict=False)
            ],
            "more": max(len(ids) - events, 0),
        })  # fmt: skip
    return rows


def object_lineage(rt: Runtime, ref: str) -> list[dict[str, Any]]:
    """Every event of the object `ref` names (as `trace` resolves it), newest first, with the
    table and snapshot each committed to."""
    return [
        {"event": e.id, "object": e.object_ref, "pipeline": e.pipeline, "state": e.state, "landed_at": e.landed_at,
         "table": e.table, "snapshot_id": e.snapshot_id, "rows_out": e.rows_out}
        for e in events_for_object(rt, ref)
    ]  # fmt: skip

"""What a failed lookup tells the user: which table is missing, or why a time has no snapshot.

DuckDB's own words describe its catalog ("schema t does not exist"), not the lake's, and
pyiceberg only says that no snapshot matched; these say what the user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath

import duckdb
from pyiceberg.table import Table

from icefloe.query.pushdown import walk

__all__ = ["missing_table", "no_snapshot_at"]


def missing_table(sql: str, error: str, known: list[str]) -> str | None:
    """The first table the SQL names that neither the lake nor the ledger has, if DuckDB's
    catalog error is about it; None when the error is about something else (a function, say)."""
    if "table with name" not in error.lower() or "does not exist" not in error:
        return None
    con = duckdb.connect()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duckdb.Error, json.JSONDecodeError, IndexError):
        return None
    finally:
        con.close()
    ctes = {entry.get("key", "").lower() for node in walk(tree) for entry in (node.get("cte_map") or {}).get("map", [])}
    lowered, names = error.lower(), {name.lower() for name in known}
    for node in walk(tree):
        if node.get("type") != "BASE_TABLE":
            continue
        schema, table = node.get("schema_name", ""), node.get("table_name", "")
        name = f"{schema}.{table}" if schema else table
        if name.lower() in names or (not schema and table.lower() in ctes) or table.lower() not in lowered:
            continue
        if name.lower() == "icefloe.quarantine":
            return "no table icefloe.quarantine: no rows have been quarantined"
        return f"no table {name}; tables: {', '.join(sorted(known)) or 'none yet'}"
    return None


def _iso(millis: float) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _created_ms(table: Table) -> int | None:
    """When the table was created, if its metadata log still reaches back to the first version
    (icefloe keeps only a few: write.metadata.previous-versions-max)."""
    metadata = table.metadata
    if metadata.metadata_log:
        first = metadata.metadata_log[0]
        return first.timestamp_ms if PurePosixPath(first.metadata_file).name.startswith("00000-") else None
    location = PurePosixPath(table.metadata_location or "")
    return metadata.last_updated_ms if location.name.startswith("00000-") else None


def no_snapshot_at(table: Table, text: str, millis: int, first_commit_ms: Callable[[], float | None]) -> str:
    """Why `--as-of text` finds no snapshot: before the table existed, before its first
    commit, or in history that maintenance expired. `first_commit_ms` is the ledger's earliest
    commit to the table, asked only when the table's own metadata cannot tell."""
    name = ".".join(table.name())
    text = f"{text} ({_iso(millis)})" if text.isdigit() else text
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    created = _created_ms(table)
    if created is not None and millis < created:
        return f"{name} did not exist at {text}: it was created at {_iso(created)}"
    if not snapshots:
        return f"{name} has no snapshots yet: nothing has been committed to it"
    oldest = snapshots[0]
    kept = f"the oldest kept is {oldest.snapshot_id} from {_iso(oldest.timestamp_ms)}"
    # expiry clears the parent id of the oldest snapshot it keeps, so the sequence number (1 for a
    # format-v2 table's first snapshot) is what shows that older snapshots existed
    if oldest.parent_snapshot_id is None and (oldest.sequence_number or 0) <= 1:
        if created is not None:
            return f"{name} had no data yet at {text}: created at {_iso(created)}, first snapshot {oldest.snapshot_id} from {_iso(oldest.timestamp_ms)}"
        return f"{name} did not exist yet at {text}: its first snapshot is {oldest.snapshot_id} from {_iso(oldest.timestamp_ms)}"
    if created is None:
        first = first_commit_ms()
        if first is not None and millis < first:
            return f"{name} did not exist yet at {text}: icefloe first committed to it at {_iso(first)} ({kept})"
    return (
        f"{name}: the snapshots current at {text} were expired by the maintenance policy (keep_snapshots /"
        f" keep_for); {kept}"
    )

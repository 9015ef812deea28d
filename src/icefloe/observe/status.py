"""`status`: per source, pipeline, worker and table: backlog, lag, last commit, failures."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from icefloe.lake.policy import MAINTENANCE_JOB
from icefloe.observe.backlog import waiting_objects
from icefloe.observe.workers import worker_rows
from icefloe.runtime import Runtime

__all__ = ["status"]

_PENDING = ("landed", "queued", "running", "retrying")
log = logging.getLogger(__name__)


def status(rt: Runtime) -> list[dict[str, Any]]:
    """One row per source, pipeline and table. Backlog = events still pending plus objects in the
    source not landed yet (`waiting`); lag = age of the oldest of them. Table rows need the
    catalog: when it cannot be opened they say why (`unavailable`), and the rest still shows."""
    now = time.time()
    ledger = rt.ledger
    # the ledger's counters (kept by every transition) and one index seek per pending
    # (state, pipeline) for the oldest landing: status reads no event row to count
    counts = ledger.tallies()
    oldest = {name: at for name, (_, at) in ledger.gauges([]).pending.items()}
    groups = counts.states
    waiting = waiting_objects(rt)
    rows: list[dict[str, Any]] = []
    for name in rt.config.sources:
        mine = [g for g in groups if g.source == name]
        rows.append({
            "kind": "source", "name": name, "objects": counts.objects.get(name, 0),
            "waiting": sum(w.source == name for w in waiting),
            "unrouted": sum(g.events for g in mine if g.state == "unrouted"),
            "last_landed": _iso(counts.last_landed.get(name)),
            **rt.sources[name].upstream(),
        })  # fmt: skip
    quarantined: Counter[str] = Counter()
    for name, cfg in rt.config.pipelines.items():
        mine = [g for g in groups if g.pipeline == name]
        states: Counter[str] = Counter()
        for g in mine:
            states[g.state] += g.events
        unlanded = [w for w in waiting if name in w.pipelines]
        since = [oldest[name]] if name in oldest else []
        since += [w.modified_at for w in unlanded]
        bad = sum(g.rows_quarantined for g in mine if g.state == "committed")
        quarantined[cfg.write.table] += bad
        rows.append({
            "kind": "pipeline", "name": name, "table": cfg.write.table,
            "backlog": sum(states[s] for s in _PENDING) + len(unlanded), "waiting": len(unlanded),
            "running": states["running"], "retrying": states["retrying"],
            "committed": states["committed"], "dead": states["dead"], "quarantined": bad,
            "lag_s": round(max(now - min(since), 0.0), 3) if since else 0.0,
            "last_commit": _iso(max((g.last_committed_at or 0 for g in mine), default=None) or None),
            "last_error": ledger.last_error(name) if states["dead"] else None,
        })  # fmt: skip
    rows += worker_rows(rt)
    tables = {cfg.write.table for cfg in rt.config.pipelines.values()}
    tables |= {t for cfg in rt.config.pipelines.values() for t in cfg.write.children.values()}
    names = sorted(tables)
    peeked = _peek(rt, names)
    down = _catalog_down(rt) if peeked is None else None
    for table in names:
        if peeked is not None:
            row = _peeked_row(rt, table, peeked[table])
        elif down is None:
            row = _table_row(rt, table)
        else:
            row = {"kind": "table", "name": table, "exists": None, "unavailable": down}
        rows.append({**row, "quarantined": quarantined[table]})
    return rows


def _peek(rt: Runtime, names: list[str]) -> dict[str, Any] | None:
    """The tables' figures read from their files without pyiceberg (`lake.peek`), when this
    process has not opened the catalog anyway (a CLI `status` pays seconds of imports for it);
    None: ask the catalog (`_table_row`), which also says why it cannot be reached."""
    if not names or "catalog" in rt.__dict__ or not rt.catalog_from_config:
        return None
    from icefloe.lake.peek import peek_tables
    from icefloe.lake.policy import MaintenancePolicy

    small = {name: MaintenancePolicy(**rt.config.maintenance.settings(name)).small_threshold for name in names}
    try:
        return peek_tables(rt.config.catalog, rt.root, names, small)
    except Exception as exc:  # noqa: BLE001 - anything it cannot read, pyiceberg reads (or explains)
        log.debug("status: reading the tables through the catalog (%s)", exc)
        return None


def _peeked_row(rt: Runtime, name: str, found: Any) -> dict[str, Any]:
    if found is None:
        return {"kind": "table", "name": name, "exists": False}
    return {
        "kind": "table", "name": name, "exists": True,
        "snapshots": found.snapshots, "rows": found.rows, "files": found.files,
        "last_snapshot": found.last_snapshot,
        "last_commit": _iso(found.last_commit_ms / 1000) if found.last_commit_ms is not None else None,
        **_health(rt, name, found.stats),
    }  # fmt: skip


def _catalog_down(rt: Runtime) -> str | None:
    """Why the catalog cannot be opened now, if it cannot (asked once, not once per table)."""
    from icefloe.errors import StorageUnavailableError

    try:
        rt.catalog  # noqa: B018 - opening it is the question
    except StorageUnavailableError as exc:
        return str(exc)
    return None


def _table_row(rt: Runtime, name: str) -> dict[str, Any]:
    from pyiceberg.exceptions import NoSuchTableError

    from icefloe.lake.catalog import catalog_outage

    try:
        table = rt.catalog.load_table(name)
    except NoSuchTableError:
        return {"kind": "table", "name": name, "exists": False}
    except Exception as exc:
        outage = catalog_outage(exc, rt.config.catalog)
        if outage is None:
            raise
        return {"kind": "table", "name": name, "exists": None, "unavailable": str(outage)}
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot else None
    return {
        "kind": "table", "name": name, "exists": True,
        "snapshots": len(table.metadata.snapshots),
        "rows": int(summary["total-records"] or 0) if summary else 0,
        "files": int(summary["total-data-files"] or 0) if summary else 0,
        "last_snapshot": snapshot.snapshot_id if snapshot else None,
        "last_commit": _iso(snapshot.timestamp_ms / 1000) if snapshot else None,
        **upkeep_row(rt, table, name),
    }  # fmt: skip


def upkeep_row(rt: Runtime, table: Any, name: str) -> dict[str, Any]:
    """File health and the last maintenance run, shown by `status` and `history`."""
    from icefloe.lake.maintain import table_stats
    from icefloe.upkeep import policy_for

    return _health(rt, name, table_stats(table, small_file_bytes=policy_for(rt, name).small_threshold))


def _health(rt: Runtime, name: str, stats: dict[str, Any]) -> dict[str, Any]:
    # the newest few: a table runs one job at a time, so a finished one is among them (a table
    # maintained every few commits has thousands of runs behind it)
    recent = rt.ledger.jobs(kind=MAINTENANCE_JOB, target=name, limit=8)
    last = next((j for j in recent if j.state != "running"), None)
    return {
        "data_files": stats["data_files"],
        "small_files": stats["small_files"],
        "small_file_ratio": round(stats["small_file_ratio"], 3),
        "manifests": stats["manifests"],
        "metadata_mb": round(stats["metadata_bytes"] / 1e6, 3),
        "data_mb": round(stats["data_bytes"] / 1e6, 3),
        "last_maintained": _iso(last.ended_at) if last else None,
        "maintenance": (last.state if not last.detail.get("dry_run") else "dry run") if last else None,
    }


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

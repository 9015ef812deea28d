"""The workers part of `status`: each worker's host, pid and last heartbeat, and the events held
by workers that are gone (they wait for another worker to take them back)."""

from __future__ import annotations

import time
from typing import Any

from icefloe.ledger.base import HEARTBEAT_EVERY, Event, WorkerInfo, local_owner_alive
from icefloe.runtime import Runtime

__all__ = ["worker_rows", "worker_state"]


def worker_state(worker: WorkerInfo, now: float, lease: float) -> str:
    """alive, stopped, dead (a local process that is gone) or silent (another host's worker whose
    heartbeats stopped for longer than a lease: probably dead; its leases expire on their own)."""
    if worker.stopped_at is not None:
        return "stopped"
    if not local_owner_alive(worker.owner):
        return "dead"
    if now - worker.heartbeat_at > max(lease, 5 * HEARTBEAT_EVERY):
        return "silent"
    return "alive"


def worker_rows(rt: Runtime, events: list[Event]) -> list[dict[str, Any]]:
    """One row per worker that has not stopped, and per owner of running events."""
    now = time.time()
    held: dict[str, list[Event]] = {}
    for ev in events:
        if ev.state == "running" and ev.lease_owner:
            held.setdefault(ev.lease_owner, []).append(ev)
    known = {w.owner: w for w in rt.ledger.workers()}
    rows = []
    for owner in dict.fromkeys([*known, *held]):
        worker = known.get(owner)
        if worker is None:  # leased by a worker older than heartbeats, or one that never sent any
            host, _, rest = owner.partition(":")
            worker = WorkerInfo(owner, host, int(rest.partition(":")[0] or -1) if rest[:1].isdigit() else -1, 0.0, 0.0)
            state = "alive" if local_owner_alive(owner) else "dead"
        else:
            state = worker_state(worker, now, rt.config.lease)
        mine = held.get(owner, [])
        if state == "stopped" and not mine:
            continue
        rows.append({
            "kind": "worker", "name": owner, "host": worker.host, "pid": worker.pid, "state": state,
            "last_heartbeat": _iso(worker.heartbeat_at),
            "heartbeat_age_s": round(now - worker.heartbeat_at, 1) if worker.heartbeat_at else None,
            "running": len(mine),
            # events whose owner is gone: shown by name, so a stall is never a mystery
            "orphaned": ", ".join(f"{e.id[:12]} {e.object_ref}" for e in mine[:5]) + (" ..." if len(mine) > 5 else "")
            if state != "alive" else "",
        })  # fmt: skip
    return rows


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None

"""The workers part of `status`: each worker's host, pid and last heartbeat, and the events held
by workers that are gone (they wait for another worker to take them back)."""

from __future__ import annotations

import time
from typing import Any

from icefloe.ledger.base import HEARTBEAT_EVERY, Event, Ledger, WorkerInfo, local_owner_alive
from icefloe.runtime import Runtime

__all__ = ["worker_rows", "worker_state"]

# orphaned events named per worker row; the rest are counted
_NAMED = 5


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


def worker_rows(rt: Runtime) -> list[dict[str, Any]]:
    """One row per worker that has not stopped, and per owner of running events."""
    now = time.time()
    held, named = _held(rt.ledger)
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
        mine, shown = held.get(owner, 0), named.get(owner, [])
        if state == "stopped" and not mine:
            continue
        rows.append({
            "kind": "worker", "name": owner, "host": worker.host, "pid": worker.pid, "state": state,
            "last_heartbeat": _iso(worker.heartbeat_at),
            "heartbeat_age_s": round(now - worker.heartbeat_at, 1) if worker.heartbeat_at else None,
            "running": mine,
            # events whose owner is gone: shown by name, so a stall is never a mystery
            "orphaned": ", ".join(f"{e.id[:12]} {e.object_ref}" for e in shown) + (" ..." if mine > len(shown) else "")
            if state != "alive" else "",
        })  # fmt: skip
    return rows


def _held(ledger: Ledger) -> tuple[dict[str, int], dict[str, list[Event]]]:
    """Running events per lease owner, and the first few of each by name: counted by the ledger
    (a crowd of workers, or a dead host's leases, can hold many)."""
    holders = ledger.lease_holders(_NAMED)
    return {o: n for o, (n, _) in holders.items()}, {o: shown for o, (_, shown) in holders.items()}


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None

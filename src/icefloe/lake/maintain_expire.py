"""Snapshot expiry, and deleting the files only expired snapshots referenced.

pyiceberg 0.12's `ExpireSnapshots` only drops snapshots from the metadata; their manifest lists,
the manifests no kept snapshot lists, and data files no kept snapshot reads stay on disk. Those
are known-unreferenced the moment the expiry commits, so they are deleted here rather than left
for orphan removal (which must wait out a safety age because it cannot tell a crash's leftovers
from a commit in progress).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update import AssertRefSnapshotId, RemoveSnapshotsUpdate

from icefloe.lake.compat import transaction
from icefloe.lake.events import event_files, snapshot_event_ids
from icefloe.lake.maintain_files import MAINTENANCE_PROPERTY, Walk, delete_files, file_size

__all__ = ["ExpiryPlan", "ExpiryResult", "plan_expiry", "unreferenced", "expire"]

ATTEMPTS = 6


@dataclass
class ExpiryPlan:
    expire: list[Snapshot]
    keep: list[Snapshot]
    events: dict[str, int] = field(default_factory=dict)  # event id -> snapshot id, of expired snapshots


@dataclass
class ExpiryResult:
    table: Table
    expired: int = 0
    files_deleted: int = 0
    bytes_freed: int = 0
    notes: list[str] = field(default_factory=list)


def plan_expiry(table: Table, keep_snapshots: int, keep_for: float, now: float) -> ExpiryPlan:
    """Which snapshots may go: not current, not a branch or tag head, not among the newest
    `keep_snapshots` commits (or after them), not younger than `keep_for`, and not the one
    current at the start of the `keep_for` window (an `--as-of` inside the window resolves to it)."""
    metadata = table.metadata
    snapshots = sorted(metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
    keep_ids = {ref.snapshot_id for ref in metadata.refs.values()}
    if metadata.current_snapshot_id is not None:
        keep_ids.add(metadata.current_snapshot_id)
    # the newest N commits, and every state since: maintenance's own snapshots do not use up the
    # quota, or each run would shorten the time-travel window a reader gets
    ordinary = [s for s in snapshots if not (s.summary and s.summary[MAINTENANCE_PROPERTY])]
    if ordinary:
        oldest = ordinary[-min(max(keep_snapshots, 1), len(ordinary))]
        keep_ids.update(s.snapshot_id for s in snapshots[snapshots.index(oldest) :])
    if keep_for > 0:
        cutoff_ms = int((now - keep_for) * 1000)
        keep_ids.update(s.snapshot_id for s in snapshots if s.timestamp_ms >= cutoff_ms)
        current_then = [e.snapshot_id for e in metadata.snapshot_log if e.timestamp_ms <= cutoff_ms]
        if current_then:
            keep_ids.add(current_then[-1])
    plan = ExpiryPlan([s for s in snapshots if s.snapshot_id not in keep_ids], [s for s in snapshots if s.snapshot_id in keep_ids])
    for snapshot in plan.expire:
        plan.events.update(dict.fromkeys(snapshot_event_ids(table, snapshot), snapshot.snapshot_id))
    return plan


def _keeping(plan: ExpiryPlan, snapshot_ids: set[int]) -> ExpiryPlan:
    """The plan with these snapshots moved from expiring to kept."""
    kept = [s for s in plan.expire if s.snapshot_id in snapshot_ids]
    events = {e: sid for e, sid in plan.events.items() if sid not in snapshot_ids}
    return ExpiryPlan([s for s in plan.expire if s.snapshot_id not in snapshot_ids], plan.keep + kept, events)


def unreferenced(table: Table, expired: list[Snapshot], kept: list[Snapshot]) -> dict[str, int]:
    """Path -> bytes of every file reachable from `expired` and from nothing in `kept`."""
    walk = Walk(table)
    kept_reach = walk.reach(kept, entries=False)
    gone_reach = walk.reach(expired, entries=False)
    lists = {path: file_size(table.io, path) for path in gone_reach.manifest_lists if path not in kept_reach.manifest_lists}
    manifests = {path: size for path, size in gone_reach.manifests.items() if path not in kept_reach.manifests}
    # the event lists of large commits (`lake.events`) go with their snapshots
    kept_events = set(event_files(kept))
    lists.update({path: file_size(table.io, path) for path in event_files(expired) if path not in kept_events})
    if not manifests:
        return lists
    # a data file in a dropped manifest may still be live in a kept one (an EXISTING entry after a
    # manifest rewrite or a merge): only the kept snapshots' live entries decide
    live = walk.reach(kept).live
    dropped = walk.reach(expired, skip=kept_reach.manifests)
    files = {path: size for path, size in dropped.files.items() if path not in live}
    return {**lists, **manifests, **files}


def expire(
    catalog: Catalog,
    identifier: str,
    table: Table,
    keep_snapshots: int,
    keep_for: float,
    *,
    now: float,
    dry_run: bool = False,
    on_expire: Callable[[dict[str, int]], Collection[str] | None] | None = None,
    properties: dict[str, str] | None = None,
) -> ExpiryResult:
    """Expire, then delete what only the expired snapshots held. `properties` ride in the same commit.

    `on_expire` may answer with event ids it could not record yet: the snapshots holding them
    stay this time (a later run expires them)."""
    notes: list[str] = []
    for attempt in range(ATTEMPTS):
        plan = plan_expiry(table, keep_snapshots, keep_for, now)
        if dry_run:
            freed = unreferenced(table, plan.expire, plan.keep) if plan.expire else {}
            return ExpiryResult(table, len(plan.expire), len(freed), sum(freed.values()))
        if not plan.expire and not properties:
            return ExpiryResult(table)
        if plan.expire and on_expire is not None:
            # before the commit: once the snapshots are gone the table can no longer say which
            # events it holds, so the caller records them elsewhere first (or raises to veto)
            held = on_expire(dict(plan.events))
            if held:
                plan = _keeping(plan, {plan.events[e] for e in held if e in plan.events})
                notes = [f"expire: {len(set(held))} events are being committed right now; their snapshots stay until the next run"]
                if not plan.expire and not properties:
                    return ExpiryResult(table, notes=notes)
        tx = transaction(table)
        if properties:
            tx.set_properties(properties)
        if plan.expire:
            # not ExpireSnapshots.by_ids: it copies the whole table metadata twice per snapshot.
            # The catalog applies updates to whatever metadata is current when it commits, so
            # without the requirement a racing commit would go unnoticed and the plan (which
            # snapshots are the newest N) would be off; with it, the race is a retry
            head = table.metadata.current_snapshot_id
            # pydantic models populated by field name; their generated signatures only show aliases
            remove = RemoveSnapshotsUpdate(snapshot_ids=[s.snapshot_id for s in plan.expire])  # type: ignore[call-arg]
            tx._apply((remove,), (AssertRefSnapshotId(ref=MAIN_BRANCH, snapshot_id=head),))  # type: ignore[call-arg]
        try:
            table = tx.commit_transaction()
        except CommitFailedException:
            time.sleep(min(0.02 * 2**attempt, 0.5))
            table = catalog.load_table(identifier)
            continue
        result = ExpiryResult(table, len(plan.expire), notes=notes)
        if plan.expire:
            # computed against the committed metadata, which also holds whatever a racing writer added
            kept = table.metadata.snapshots
            doomed = unreferenced(table, plan.expire, kept)
            result.files_deleted, result.bytes_freed, failed = delete_files(table.io, doomed)
            if failed:
                result.notes.append(f"expire: {len(failed)} files could not be deleted; orphan removal will retry")
        return result
    result = ExpiryResult(catalog.load_table(identifier))
    result.notes.append(f"expire: gave up after {ATTEMPTS} commit conflicts; nothing expired")
    return result

"""Table maintenance: compaction, manifest rewrite, snapshot expiry, orphan-file removal.

Why it exists: every Iceberg commit writes a metadata file listing every snapshot, and pyiceberg
copies the whole metadata several times per commit, so commit time grows with history. Expiry
bounds the snapshot count, the manifest rewrite bounds the manifest list, compaction bounds the
data-file count (and read cost), orphan removal reclaims what crashes leave behind.

One run (`maintain`) does, in this order: compact (one `replace` snapshot), rewrite manifests
(another), expire (dropping the pre-compaction snapshots beyond the retention together with the
small files only they read), remove orphans. Every step commits on its own with its own
conflict retry; a racing ordinary commit costs a retry, never rows. The time of the run and the
metadata-bounding properties ride in the expiry commit, as table properties, so they survive
any snapshot expiring. `Maintainer` decides when a run is due, per table, from cheap counters.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table

from icefloe.errors import ConfigError, NotFoundError, describe
from icefloe.lake.compat import transaction
from icefloe.lake.maintain_compact import Exclusive, compact
from icefloe.lake.maintain_expire import expire
from icefloe.lake.maintain_files import (
    BOUNDED_METADATA_PROPERTIES,
    MAINTENANCE_PROPERTY,
    file_size,
    live_entries,
    manifests_of,
    reach,
)
from icefloe.lake.maintain_manifests import rewrite_manifests
from icefloe.lake.maintain_orphans import remove_orphans
from icefloe.lake.policy import MAINTAINED_AT_PROPERTY, MaintenancePolicy

__all__ = [
    "ACTIONS",
    "BOUNDED_METADATA_PROPERTIES",
    "MAINTAINED_AT_PROPERTY",
    "Maintainer",
    "MaintenancePolicy",
    "MaintenanceReport",
    "maintain",
    "table_stats",
]

log = logging.getLogger(__name__)

# {event id: snapshot id} of the snapshots about to expire -> the event ids not yet recorded elsewhere
OnExpire = Callable[[dict[str, int]], Collection[str] | None]

ACTIONS = ("expire", "compact", "manifests", "orphans")
# the orphan sweep lists the table's files and reads every manifest: once an hour is plenty for
# files that only become removable after `orphan_min_age` (days)
ORPHAN_SWEEP_INTERVAL = 3600.0


@dataclass
class MaintenanceReport:
    """One run over one table; with `dry_run` what a run would do (nothing changed)."""

    table: str
    started: float
    ended: float
    dry_run: bool
    expired_snapshots: int = 0
    files_compacted: int = 0
    files_written: int = 0
    manifests_before: int = 0
    manifests_after: int = 0
    orphans_removed: int = 0
    bytes_freed: int = 0
    snapshot_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _load(catalog: Catalog, identifier: str) -> Table:
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        raise NotFoundError(f"no table {identifier!r}") from None


def _set_properties(catalog: Catalog, identifier: str, table: Table, properties: dict[str, str]) -> Table:
    for attempt in range(6):
        try:
            with transaction(table) as tx:
                tx.set_properties(properties)
            return table
        except CommitFailedException:
            time.sleep(min(0.02 * 2**attempt, 0.5))
            table = catalog.load_table(identifier)
    return table


def maintain(
    catalog: Catalog,
    identifier: str,
    policy: MaintenancePolicy,
    *,
    dry_run: bool = False,
    now: float | None = None,
    actions: Sequence[str] = ACTIONS,
    on_expire: OnExpire | None = None,
    exclusive: Exclusive | None = None,
) -> MaintenanceReport:
    """Run the chosen actions over one table.

    `exclusive()` is a lock the caller's committer takes around its own commits; a compaction or
    manifest rewrite that lost a race to one takes it for its next attempts (see `compact`).

    `on_expire({event_id: snapshot_id})` gets the `icefloe.events` of every snapshot about to
    expire, before the expiry commits, so the caller can record them (the writer's exactly-once
    check reads them from table history); it returns the ids it could not record yet (their
    snapshots are kept this time) or None. If it raises, nothing is expired and the exception
    propagates. Any other failure of one action is noted in the report and the others still run."""
    if unknown := [a for a in actions if a not in ACTIONS]:
        raise ConfigError(f"unknown maintenance action {unknown[0]!r}; choose from {', '.join(ACTIONS)}")
    return _Run(catalog, identifier, policy, dry_run, now, on_expire, exclusive).run(actions)


class _Run:
    def __init__(
        self, catalog: Catalog, identifier: str, policy: MaintenancePolicy, dry_run: bool, now: float | None,
        on_expire: OnExpire | None, exclusive: Exclusive | None = None,
    ) -> None:  # fmt: skip
        self.catalog, self.identifier, self.policy, self.dry_run = catalog, identifier, policy, dry_run
        self.on_expire, self.exclusive = on_expire, exclusive
        started = time.time()
        self.now = started if now is None else now
        self.table = _load(catalog, identifier)
        self.report = MaintenanceReport(identifier, started, started, dry_run)
        self.vetoed = False

    def run(self, actions: Sequence[str]) -> MaintenanceReport:
        report, table = self.report, self.table
        report.manifests_before = report.manifests_after = len(manifests_of(table, table.current_snapshot()))
        # the time of the run and the metadata bounds ride in the expiry commit
        self.properties = {} if self.dry_run else {MAINTAINED_AT_PROPERTY: f"{self.now:.3f}"}
        if not self.dry_run:
            self.properties.update({k: v for k, v in BOUNDED_METADATA_PROPERTIES.items() if k not in table.properties})
        for action, step in (("compact", self.compact), ("manifests", self.manifests), ("expire", self.expire)):
            if action in actions:
                self.step(action, step)
        if "expire" not in actions and self.properties:
            self.table = _set_properties(self.catalog, self.identifier, self.table, self.properties)
        if "orphans" in actions:
            self.step("orphans", self.orphans)
        snapshot = self.table.current_snapshot()
        report.snapshot_id = snapshot.snapshot_id if snapshot else None
        if not self.dry_run:
            report.manifests_after = len(manifests_of(self.table, snapshot))
        report.ended = time.time()
        return report

    def step(self, action: str, run: Callable[[], Table]) -> None:
        # each action stands alone: an unreadable file that stops compaction must not stop the
        # expiry that keeps commits fast; the failure is in the report and the log
        try:
            self.table = run()
        except Exception as exc:  # noqa: BLE001
            if self.vetoed:
                raise
            log.warning("%s: maintenance step %s failed: %s", self.identifier, action, describe(exc))
            self.report.notes.append(f"{action} failed: {describe(exc)}")
            self.table = self.catalog.load_table(self.identifier)

    def compact(self) -> Table:
        policy = self.policy
        done = compact(
            self.catalog, self.identifier, self.table, target=policy.target_file_bytes, small=policy.small_threshold,
            min_files=policy.compact_min_files, sort_by=policy.sort_by, dry_run=self.dry_run, exclusive=self.exclusive,
        )  # fmt: skip
        self.report.files_compacted, self.report.files_written = done.files_compacted, done.files_written
        self.report.notes.extend(done.notes)
        return done.table

    def manifests(self) -> Table:
        done = rewrite_manifests(
            self.catalog, self.identifier, self.table, max_manifests=self.policy.max_manifests, dry_run=self.dry_run,
            exclusive=self.exclusive,
        )  # fmt: skip
        if self.dry_run:
            self.report.manifests_after = done.after
        self.report.notes.extend(done.notes)
        return done.table

    def _hand_over(self, ids: dict[str, int]) -> Collection[str] | None:
        assert self.on_expire is not None
        try:
            return self.on_expire(ids)
        except BaseException:
            self.vetoed = True  # the caller must hear this one, unlike a failed step
            raise

    def expire(self) -> Table:
        done = expire(
            self.catalog, self.identifier, self.table, self.policy.keep_snapshots, self.policy.keep_for, now=self.now,
            dry_run=self.dry_run, on_expire=self._hand_over if self.on_expire else None, properties=self.properties,
        )  # fmt: skip
        self.report.expired_snapshots = done.expired
        self.report.bytes_freed += done.bytes_freed
        self.report.notes.extend(done.notes)
        return done.table

    def orphans(self) -> Table:
        done = remove_orphans(self.table, min_age=self.policy.orphan_min_age, now=self.now, dry_run=self.dry_run)
        self.report.orphans_removed = done.removed
        self.report.bytes_freed += done.bytes_freed
        self.report.notes.extend(done.notes)
        return self.table


def table_stats(table: Table, *, small_file_bytes: int | None = None) -> dict[str, Any]:
    """File counts, small files, manifests, snapshots, metadata size and the last maintenance.

    `metadata_bytes` is what the table's metadata currently references: the current and the
    logged earlier metadata.json files, the manifest list of every snapshot, and every manifest
    those list (sizes from the manifest lists, one stat per other file). Files nothing references
    any more (orphans) are not counted."""
    small = MaintenancePolicy().small_threshold if small_file_bytes is None else small_file_bytes
    data, deletes = live_entries(table)
    sizes = [e.data_file.file_size_in_bytes for e in data]
    snapshot = table.current_snapshot()
    found = reach(table, table.metadata.snapshots, entries=False)
    json_files = [table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)]
    metadata_bytes = sum(file_size(table.io, p) for p in [*json_files, *found.manifest_lists]) + sum(found.manifests.values())
    small_files = sum(size < small for size in sizes)
    maintained = table.properties.get(MAINTAINED_AT_PROPERTY)
    return {
        "data_files": len(sizes),
        "data_bytes": sum(sizes),
        "delete_files": len(deletes),
        "small_files": small_files,
        "small_file_ratio": small_files / len(sizes) if sizes else 0.0,
        "manifests": len(snapshot.manifests(table.io)) if snapshot else 0,
        "snapshots": len(table.metadata.snapshots),
        "metadata_bytes": metadata_bytes,
        "last_maintained_at": float(maintained) if maintained else None,
    }


@dataclass
class _Pending:
    commits: int = 0
    small: int = 0
    last_run: float | None = None
    last_sweep: float | None = None
    primed: bool = False


def _added_small(table: Table, small: int, since: float | None = None) -> tuple[int, int]:
    """(commits, small files added) by ordinary snapshots after `since`; from summaries, no I/O."""
    since_ms = -1 if since is None else since * 1000
    commits = files = 0
    for snapshot in table.metadata.snapshots:
        summary = snapshot.summary
        if snapshot.timestamp_ms <= since_ms or summary is None or summary[MAINTENANCE_PROPERTY]:
            continue
        commits += 1
        count, size = int(summary["added-data-files"] or 0), int(summary["added-files-size"] or 0)
        files += count if count and size / count < small else 0
    return commits, files


class Maintainer:
    """One per engine process: counts commits per table and says when maintenance is due.

    Counting (`after_commit`, `due`) needs no catalog and is safe from the committing thread while
    `run` works on another; `catalog` may be a function that opens one on the first run, so a
    maintenance thread gets a connection of its own without the committer waiting for it."""

    def __init__(
        self, catalog: Catalog | Callable[[], Catalog], policies: dict[str, MaintenancePolicy], default: MaintenancePolicy
    ) -> None:
        self._catalog, self.policies, self.default = catalog, dict(policies), default
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._started = time.time()

    @property
    def catalog(self) -> Catalog:
        if not isinstance(self._catalog, Catalog):
            self._catalog = self._catalog()
        return self._catalog

    def policy(self, identifier: str) -> MaintenancePolicy:
        return self.policies.get(identifier, self.default)

    def _state(self, identifier: str, table: Table | None) -> _Pending:
        state = self._pending.setdefault(identifier, _Pending())
        if not state.primed and table is not None:
            # a fresh process picks up what piled up since the last run, from the table itself
            maintained = table.properties.get(MAINTAINED_AT_PROPERTY)
            state.last_run = float(maintained) if maintained else None
            state.commits, state.small = _added_small(table, self.policy(identifier).small_threshold, state.last_run)
            state.primed = True
        return state

    def after_commit(self, identifier: str, table: Table | None = None) -> bool:
        """Count one commit (pass the table just committed to, for the small-file trigger);
        True if a run is due now."""
        with self._lock:
            primed = identifier in self._pending and self._pending[identifier].primed
            state = self._state(identifier, table)
            if primed or table is None:  # priming already counted the commit it was handed
                state.commits += 1
                snapshot = table.current_snapshot() if table is not None else None
                if snapshot is not None and snapshot.summary is not None and not snapshot.summary[MAINTENANCE_PROPERTY]:
                    count, size = int(snapshot.summary["added-data-files"] or 0), int(snapshot.summary["added-files-size"] or 0)
                    state.small += count if count and size / count < self.policy(identifier).small_threshold else 0
        return self.due(identifier, table)

    def due(self, identifier: str, table: Table | None = None, now: float | None = None) -> bool:
        """Commits, small files or schedule; in-memory counters, no I/O."""
        policy = self.policy(identifier)
        now = time.time() if now is None else now
        with self._lock:
            state = self._state(identifier, table)
            since = state.last_run if state.last_run is not None else self._started
        return (
            (policy.every_commits > 0 and state.commits >= policy.every_commits)
            or (policy.small_files > 0 and state.small >= policy.small_files)
            or (policy.every > 0 and now - since >= policy.every)
        )

    def run(
        self, identifier: str, *, dry_run: bool = False, on_expire: OnExpire | None = None, exclusive: Exclusive | None = None
    ) -> MaintenanceReport:
        """Run every action (orphans at most once per ORPHAN_SWEEP_INTERVAL); resets the counters."""
        with self.counted(identifier, dry_run=dry_run) as actions:
            policy = self.policy(identifier)
            return maintain(self.catalog, identifier, policy, dry_run=dry_run, actions=actions, on_expire=on_expire, exclusive=exclusive)

    @contextmanager
    def counted(self, identifier: str, *, dry_run: bool = False) -> Iterator[tuple[str, ...]]:
        """Around one run, done here or elsewhere (a maintenance process): the actions it is due,
        and the counters reset when it ends."""
        with self._lock:
            state = self._pending.setdefault(identifier, _Pending())
            sweep = state.last_sweep is None or time.time() - state.last_sweep >= ORPHAN_SWEEP_INTERVAL
            # commits counted while the run works (on another thread) count towards the next one
            commits, small = state.commits, state.small
        started = time.time()
        try:
            yield tuple(a for a in ACTIONS if a != "orphans" or sweep)
        finally:
            # reset even when the run failed: a run that cannot succeed (a veto, a catalog down)
            # is retried at the next trigger, not after every single commit
            if not dry_run:
                with self._lock:
                    state.commits, state.small = max(0, state.commits - commits), max(0, state.small - small)
                    state.last_run, state.primed = time.time(), True
                    state.last_sweep = started if sweep else state.last_sweep

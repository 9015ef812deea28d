"""Table maintenance as worker duty: when a run is due, and its record in the ledger.

The lake decides *how* to expire, compact and clean (`lake.maintain`); this module decides
*when* (the policy's triggers, counted per process), makes sure only one worker maintains a
table at a time (a ledger job), and keeps exactly-once intact: before snapshots expire, every
event they committed is marked committed in the ledger, because the table history that proved it
is about to be gone. An event some worker is committing right now (leased, `running`) is not
recorded here: its snapshot stays until the next run, so that worker's own history check finds it.

Workers run it beside the committer (`engine.maintenance`, a thread with its own catalog
connection), so a maintenance run races ordinary commits on the same table; the lake's actions
detect that on their own commits and retry or give up (see `lake.maintain`).
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

from pyiceberg.catalog import Catalog

from icefloe.errors import describe
from icefloe.lake.maintain import Maintainer, MaintenancePolicy, MaintenanceReport
from icefloe.lake.maintain_compact import Exclusive
from icefloe.lake.policy import MAINTENANCE_JOB
from icefloe.ledger.base import local_owner_alive
from icefloe.runtime import Runtime, close_catalog

__all__ = ["Upkeep", "JOB_KIND", "policy_for", "shares_one_database"]

log = logging.getLogger("icefloe")
JOB_KIND = MAINTENANCE_JOB


def policy_for(rt: Runtime, table: str | None = None) -> MaintenancePolicy:
    return MaintenancePolicy(**rt.config.maintenance.settings(table))


def shares_one_database(rt: Runtime) -> bool:
    """An in-memory catalog is one database per connection: a second one would see no tables."""
    return rt.config.catalog.partition("://")[2].lstrip("/") in ("", ":memory:")


class Upkeep:
    def __init__(self, runtime: Runtime, owner: str, *, own_connection: bool = False) -> None:
        """`own_connection`: open a catalog connection for the runs (on the first one) instead of
        using the runtime's, whose committer may be using it on another thread."""
        self.runtime, self.owner = runtime, owner
        self._own: Catalog | None = None
        self._own_connection = own_connection and not shares_one_database(runtime)
        self.config = runtime.config.maintenance
        # a job row older than this is a dead worker's: maintenance of one table never takes this long
        self.stale_after = max(3600.0, runtime.config.lease * 10)
        self._quiet_until = 0.0
        # the lock this worker's committer holds around its commits (engine.maintenance): a
        # rewrite that lost a race to it takes it for its next attempt
        self.exclusive: Exclusive | None = None

    @cached_property
    def maintainer(self) -> Maintainer:
        # opened on first use: a worker whose catalog is down must still start and retry its events
        policies = {table: policy_for(self.runtime, table) for table in self.config.tables}
        return Maintainer(self._catalog if self._own_connection else lambda: self.runtime.catalog, policies, policy_for(self.runtime))

    def _catalog(self) -> Catalog:
        if self._own is None:
            self._own = self.runtime.open_catalog()
        return self._own

    def close(self) -> None:
        """Let go of the catalog connection of its own, if it opened one."""
        if self._own is not None:
            close_catalog(self._own)  # SqlCatalog's connection pool (a PostgreSQL catalog holds sockets)
        self._own = None

    def enabled(self, table: str) -> bool:
        return self.config.enabled_for(table)

    def tick(self, tables: list[str]) -> None:
        """Scheduled runs (`maintenance.every`), checked while the worker is idle."""
        for table in self.scheduled(tables):
            self.run_quietly(table)

    def scheduled(self, tables: list[str]) -> list[str]:
        """The tables whose scheduled run (`maintenance.every`) is due; in-memory counters only."""
        if time.time() < self._quiet_until:
            return []
        try:
            return [table for table in tables if self.enabled(table) and self.maintainer.due(table)]
        except Exception as exc:  # noqa: BLE001 - the catalog is down: maintenance waits, ingestion goes on
            self._quiet_until = time.time() + 30  # an idle worker ticks every few ms: not a warning each time
            log.warning("maintenance check skipped for 30 s: %s", describe(exc))
            return []

    def run_quietly(self, table: str) -> MaintenanceReport | None:
        """`run`, but never raises: a failed run is recorded in the ledger and retried at the next
        trigger, while ingestion goes on."""
        from icefloe.observe.logs import bind
        from icefloe.observe.metrics import metrics_for

        metrics = metrics_for(self.runtime.config)
        started = time.perf_counter()
        try:
            with bind(table=table):  # its log lines name the table (--log-format json)
                report = self.run(table)
        except Exception as exc:  # noqa: BLE001 - maintenance must never stop ingestion
            metrics.maintenance(table, "failed", time.perf_counter() - started)
            metrics.error("maintain", exc)
            log.warning("maintenance of %s failed: %s", table, describe(exc))
            return None
        metrics.maintenance(table, "skipped" if report is None else "succeeded", time.perf_counter() - started)
        return report

    def run(self, table: str, *, dry_run: bool = False) -> MaintenanceReport | None:
        """One maintenance run over `table`; None when another worker is running one right now."""
        ledger = self.runtime.ledger
        for running in ledger.jobs(kind=JOB_KIND, target=table, limit=8):
            # a worker killed mid-run must not block the table's maintenance until the job goes stale
            if running.state == "running" and not local_owner_alive(running.owner):
                ledger.finish_job(running, "failed", running.detail, error="abandoned: the worker died during the run")
        job = ledger.start_job(JOB_KIND, table, self.owner, stale_after=self.stale_after)
        if job is None:
            log.info("maintenance of %s is already running elsewhere", table)
            return None
        try:
            report = self.maintainer.run(
                table, dry_run=dry_run, on_expire=lambda ids: self._settle(table, ids), exclusive=self.exclusive
            )
        except Exception as exc:
            self.runtime.ledger.finish_job(job, "failed", {"dry_run": dry_run}, error=describe(exc))
            raise
        self.runtime.ledger.finish_job(job, "succeeded", report.to_dict())
        log.info("maintained %s: %s", table, _summary(report))
        return report

    def _settle(self, table: str, ids: dict[str, int]) -> list[str]:
        """Events whose only proof of commit is a snapshot about to expire get it in the ledger.
        Returns those held by a worker right now: their snapshots must stay (see the module doc)."""
        ledger = self.runtime.ledger
        held = []
        known = ledger.get_many(ids)  # one lookup for the snapshot's events, not one each
        for event_id, snapshot_id in ids.items():
            ev = known.get(event_id)
            if ev is None or ev.state in ("committed", "discarded"):
                continue
            if ev.state == "running":
                # its worker is between its commit and its ledger update, or retrying it after a
                # crash and about to check the table history, which must still show the commit
                held.append(event_id)
                continue
            staged = [s.detail for s in ledger.steps(event_id) if s.step == "staged"]
            stats = {event_id: staged[-1]} if staged else {}
            ledger.mark_committed([event_id], table=table, snapshot_id=snapshot_id, stats=stats)
            log.info("event %s was committed in %s (snapshot %s, now expiring)", event_id, table, snapshot_id)
        return held


def _summary(report: MaintenanceReport) -> str:
    parts: dict[str, Any] = {
        "expired": report.expired_snapshots,
        "compacted": f"{report.files_compacted}->{report.files_written} files",
        "manifests": f"{report.manifests_before}->{report.manifests_after}",
        "orphans": report.orphans_removed,
    }
    return ", ".join(f"{k} {v}" for k, v in parts.items())

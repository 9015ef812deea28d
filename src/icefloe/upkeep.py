"""Table maintenance as worker duty: when a run is due, and its record in the ledger.

The lake decides *how* to expire, compact and clean (`lake.maintain`); this module decides
*when* (the policy's triggers, counted per process), makes sure only one worker maintains a
table at a time (a ledger job), and keeps exactly-once intact: before snapshots expire, every
event they committed is marked committed in the ledger, because the table history that proved it
is about to be gone.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

from icefloe.errors import describe
from icefloe.lake.maintain import Maintainer, MaintenancePolicy, MaintenanceReport
from icefloe.ledger.base import local_owner_alive
from icefloe.runtime import Runtime

__all__ = ["Upkeep", "JOB_KIND", "policy_for"]

log = logging.getLogger("icefloe")
JOB_KIND = "maintain"


def policy_for(rt: Runtime, table: str | None = None) -> MaintenancePolicy:
    return MaintenancePolicy(**rt.config.maintenance.settings(table))


class Upkeep:
    def __init__(self, runtime: Runtime, owner: str) -> None:
        self.runtime, self.owner = runtime, owner
        self.config = runtime.config.maintenance
        # a job row older than this is a dead worker's: maintenance of one table never takes this long
        self.stale_after = max(3600.0, runtime.config.lease * 10)
        self._quiet_until = 0.0

    @cached_property
    def maintainer(self) -> Maintainer:
        # opened on first use: a worker whose catalog is down must still start and retry its events
        policies = {table: policy_for(self.runtime, table) for table in self.config.tables}
        return Maintainer(self.runtime.catalog, policies, policy_for(self.runtime))

    def enabled(self, table: str) -> bool:
        return self.config.enabled_for(table)

    def tick(self, tables: list[str]) -> None:
        """Scheduled runs (`maintenance.every`), checked while the worker is idle."""
        if time.time() < self._quiet_until:
            return
        try:
            due = [table for table in tables if self.enabled(table) and self.maintainer.due(table)]
        except Exception as exc:  # noqa: BLE001 - the catalog is down: maintenance waits, ingestion goes on
            self._quiet_until = time.time() + 30  # an idle worker ticks every few ms: not a warning each time
            log.warning("maintenance check skipped for 30 s: %s", describe(exc))
            return
        for table in due:
            self.run_quietly(table)

    def run_quietly(self, table: str) -> MaintenanceReport | None:
        """`run`, but never raises: a failed run is recorded in the ledger and retried at the next
        trigger, while ingestion goes on."""
        try:
            return self.run(table)
        except Exception as exc:  # noqa: BLE001 - maintenance must never stop ingestion
            log.warning("maintenance of %s failed: %s", table, describe(exc))
            return None

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
            report = self.maintainer.run(table, dry_run=dry_run, on_expire=lambda ids: self._settle(table, ids))
        except Exception as exc:
            self.runtime.ledger.finish_job(job, "failed", {"dry_run": dry_run}, error=describe(exc))
            raise
        self.runtime.ledger.finish_job(job, "succeeded", report.to_dict())
        log.info("maintained %s: %s", table, _summary(report))
        return report

    def _settle(self, table: str, ids: dict[str, int]) -> None:
        """Events whose only proof of commit is a snapshot about to expire get it in the ledger."""
        ledger = self.runtime.ledger
        for event_id, snapshot_id in ids.items():
            ev = ledger.get(event_id)
            if ev is None or ev.state in ("committed", "discarded"):
                continue
            staged = [s.detail for s in ledger.steps(event_id) if s.step == "staged"]
            stats = {event_id: staged[-1]} if staged else {}
            ledger.mark_committed([event_id], table=table, snapshot_id=snapshot_id, stats=stats)
            log.info("event %s was committed in %s (snapshot %s, now expiring)", event_id, table, snapshot_id)


def _summary(report: MaintenanceReport) -> str:
    parts: dict[str, Any] = {
        "expired": report.expired_snapshots,
        "compacted": f"{report.files_compacted}->{report.files_written} files",
        "manifests": f"{report.manifests_before}->{report.manifests_after}",
        "orphans": report.orphans_removed,
    }
    return ", ".join(f"{k} {v}" for k, v in parts.items())

"""Maintenance beside the committer: one thread per worker, fed the tables commits made due.

A compaction or an expiry can take seconds on a big table; run in the worker's loop, no event
would be processed or committed meanwhile. Here the committer only counts its commits (in
memory) and hands the tables that became due to this thread, which runs them one after another
through `Upkeep` on a catalog connection of its own. A commit never waits for it.

The thread runs each table in the worker's maintenance process (`engine.maintenance_process`,
`maintenance.process`, on by default): most of a run is pure-Python metadata work, and on this
thread it held the GIL the committer needs. The commit counters stay in this process's
`Maintainer`; the thread serves the process's requests for the commit gate. Where a fresh
process could not open the same backends (an in-process test double, a `:memory:` database) or
with `process: false`, the runs go on this thread as `Upkeep` calls. The ledger job
(`Upkeep.run` -> `start_job`) keeps a table to one run at a time across workers either way.

Stopping: `wait` (the end of `drain`, so `run --once`) lets every run handed over finish;
`close` (any other exit: `serve` stopped, SIGTERM, KeyboardInterrupt) drops the queued runs and
gives the one in progress a few seconds (then the maintenance process is killed). A run cut off then is safe: each action commits
atomically or not at all, its files written ahead are orphans the sweep removes, and its ledger
job is taken back as abandoned by the next worker on this host (or after `stale_after`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from icefloe.engine.maintenance_process import MaintenanceProcess, usable
from icefloe.errors import describe
from icefloe.runtime import Runtime
from icefloe.upkeep import Upkeep, shares_one_database

__all__ = ["Maintenance"]

log = logging.getLogger("icefloe")

# how long an exit other than the end of a drain waits for a run in progress
STOP_GRACE = 10.0


class Maintenance:
    def __init__(self, runtime: Runtime, owner: str) -> None:
        # an in-memory catalog is one database per connection: its runs stay in the loop
        self.threaded = not shares_one_database(runtime)
        self.upkeep = Upkeep(runtime, owner, own_connection=self.threaded)
        # held by the committer around each commit; a compaction or manifest rewrite that lost a
        # race to one takes it for its next attempt, or a steady stream of commits (one every
        # ~100 ms) would win every race against its slower commit and it would never go in
        self.gate = threading.Lock()
        self.upkeep.exclusive = lambda: self.gate
        self.process = MaintenanceProcess(runtime, owner, self.gate) if self.threaded and usable(runtime) else None
        self._queue: list[str] = []
        self._running: str | None = None
        self._again: set[str] = set()
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, tables: Iterable[str]) -> None:
        """Hand these tables over for a run each; one waiting is not queued twice. One running is
        checked again when its run ends: its counters say "due" until then, and only the commits
        made meanwhile count towards its next run."""
        tables = list(tables)
        if not tables:
            return
        if not self.threaded:
            for table in tables:
                self.upkeep.run_quietly(table)
            return
        with self._changed:
            if self._closed:
                return
            self._again.update(t for t in tables if t == self._running)
            self._queue += [t for t in tables if t not in self._queue and t != self._running]
            if self._thread is None or not self._thread.is_alive():
                # started on the first run: an engine per `Project.ingest` must not pay for a thread
                # and a catalog connection it never uses
                self._thread = threading.Thread(target=self._loop, name="icefloe-maintenance", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def tick(self, tables: list[str]) -> None:
        """Scheduled runs (`maintenance.every`) that are due, handed over."""
        self.submit(self.upkeep.scheduled(tables))

    def busy(self) -> bool:
        with self._changed:
            return bool(self._queue) or self._running is not None

    def wait(self, stop: threading.Event | None = None) -> None:
        """Until every run handed over has finished (or `stop` is set)."""
        with self._changed:
            while (self._queue or self._running is not None) and not (stop and stop.is_set()):
                # in slices: `stop` is set by a signal handler, which does not notify
                self._changed.wait(0.1)

    def close(self, grace: float = STOP_GRACE) -> None:
        """Stop: queued runs are dropped, the one in progress gets `grace` seconds."""
        with self._changed:
            self._closed = True
            dropped, self._queue = self._queue, []
            thread, running = self._thread, self._running
            self._changed.notify_all()
        if dropped:
            log.info("maintenance of %s left for the next worker run", ", ".join(dropped))
        if thread is not None:
            thread.join(timeout=grace)
            if thread.is_alive() and self.process is not None:
                log.warning("maintenance of %s still running after %.0f s; stopping it (its job is taken back)", running, grace)
                self.process.stop(kill=True)  # the thread hears the pipe close and ends
                thread.join(timeout=grace)
            if thread.is_alive():
                log.warning("maintenance of %s still running after %.0f s; leaving it (its job is taken back later)", running, grace)
                return
        self.upkeep.close()
        with self._changed:  # the engine may run again (a second `drain`): a new thread then
            self._thread, self._closed = None, False

    def _loop(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._queue and not self._closed:
                        self._changed.wait()
                    if self._closed:
                        return
                    self._running = table = self._queue.pop(0)
                again = False
                try:
                    if self.process is not None:
                        self._run_in_process(table)
                    else:
                        self.upkeep.run_quietly(table)
                    again = self.upkeep.maintainer.due(table)  # by the commits made during the run
                finally:
                    with self._changed:
                        self._running = None
                        if table in self._again:
                            self._again.discard(table)
                            if again and not self._closed and table not in self._queue:
                                self._queue.append(table)
                        self._changed.notify_all()
        except BaseException:  # never let the thread die silently; the worker goes on without it
            log.exception("the maintenance thread stopped")
            with self._changed:
                self._queue = []
                self._changed.notify_all()
            raise
        finally:
            if self.process is not None:  # started by this thread: it would die with it anyway
                self.process.stop()

    def _run_in_process(self, table: str) -> None:
        """`Upkeep.run_quietly`, the run itself in the maintenance process."""
        from icefloe.observe.logs import bind
        from icefloe.observe.metrics import metrics_for

        assert self.process is not None
        metrics = metrics_for(self.upkeep.runtime.config)
        started = time.perf_counter()
        try:
            with bind(table=table), self.upkeep.maintainer.counted(table):
                report = self.process.run(table)
        except Exception as exc:  # noqa: BLE001 - maintenance must never stop ingestion
            metrics.maintenance(table, "failed", time.perf_counter() - started)
            metrics.error("maintain", getattr(exc, "kind", None) or exc)
            log.warning("maintenance of %s failed: %s", table, describe(exc))
            return
        metrics.maintenance(table, "skipped" if report is None else "succeeded", time.perf_counter() - started)

"""Maintenance beside the committer: one thread per worker, fed the tables commits made due.

A compaction or an expiry can take seconds on a big table; run in the worker's loop, no event
would be processed or committed meanwhile. Here the committer only counts its commits (in
memory) and hands the tables that became due to this thread, which runs them one after another
through `Upkeep` on a catalog connection of its own. A commit never waits for it.

A thread, not a child process: the work is mostly Parquet and catalog I/O (pyarrow and the
database drivers release the GIL), the commit counters live in this process's `Maintainer`, and a
child would need its own ledger, config and imports (about a second to start) for each worker. The
ledger job (`Upkeep.run` -> `start_job`) still keeps a table to one run at a time across workers.

Stopping: `wait` (the end of `drain`, so `run --once`) lets every run handed over finish;
`close` (any other exit: `serve` stopped, SIGTERM, KeyboardInterrupt) drops the queued runs and
gives the one in progress a few seconds. A run cut off then is safe: each action commits
atomically or not at all, its files written ahead are orphans the sweep removes, and its ledger
job is taken back as abandoned by the next worker on this host (or after `stale_after`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

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

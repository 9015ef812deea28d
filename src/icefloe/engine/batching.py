"""Batching: each table's micro-batch, when it is due for its commit, and where it commits.

A batch is committed when it reaches `batch.max_rows` / `max_bytes`, or nothing more is coming for
its table right now (waiting would only add latency), or it waited `max_wait`, stretched under a
backlog behind slow commits. `Batching` is the `Committer`'s part for it (its attributes are
declared below, set by `Committer.__init__`).

In a running worker (`background`, set by `Engine.serve`) the due batches commit on a thread
while the loop leases and processes the next events: a commit of hundreds of ms no longer holds
back the round after it. One commit runs at a time, so a table's batches commit in the order the
loop cut them (the ordering rule); a failed event's newer ones wait for it as before (its hold
covers the buffer and the round in progress: `engine.failures`, `engine.processing`). While a
commit runs, a batch at its size limits stops the leasing (`full`): memory stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from icefloe.errors import LedgerUnavailableError
from icefloe.ledger.base import Event, Ledger
from icefloe.observe.logs import bind
from icefloe.pipelines.runner import EventOutput
from icefloe.runtime import Clock

if TYPE_CHECKING:
    from icefloe.config import ProjectConfig
    from icefloe.engine.maintenance import Maintenance

__all__ = ["COMMIT_STRETCH", "MAX_STRETCH", "Batching"]

log = logging.getLogger("icefloe")

# under a backlog a batch stays open this many times the table's last commit, at most MAX_STRETCH s
COMMIT_STRETCH = 4.0
MAX_STRETCH = 10.0


@dataclass
class _Buffer:
    items: list[tuple[Event, EventOutput]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    first_at: float = 0.0


class Batching:
    config: ProjectConfig
    ledger: Ledger
    clock: Clock
    table_of: dict[str, str]
    buffers: dict[str, _Buffer]
    _maintenance: Maintenance | None
    _commit_seconds: dict[str, float]  # how long each table's last commit took
    # pipeline -> events landed since the round's lease (the landing thread lands during it)
    _arrived: dict[str, int]
    _arrived_lock: threading.Lock
    # commits run on `_commit_thread` (a running worker), else in the caller
    background: bool
    _commit_thread: threading.Thread | None
    _commit_running: bool
    # guards the buffers and `_held_back` between the loop and the commit thread
    _buffers_lock: threading.RLock
    _held_behind: set[str]
    on_committed: Callable[[], None] | None  # a background commit ended (wakes the loop)
    # event id -> epoch of the batches being committed (the keep-alive renews their leases)
    committing: dict[str, int]

    if TYPE_CHECKING:

        def _commit(self, table: str, items: list[tuple[Event, EventOutput]]) -> None: ...

    def leasing(self) -> None:
        """A round leases now: what lands from here on is for the next round to take; a failed
        event's hold from the commit thread has done its work (its newer events lease after it)."""
        with self._arrived_lock:
            self._arrived.clear()
        with self._buffers_lock:
            self._held_behind.clear()

    def arrived(self, events: list[Event]) -> None:
        with self._arrived_lock:
            for ev in events:
                if ev.pipeline is not None:
                    self._arrived[ev.pipeline] = self._arrived.get(ev.pipeline, 0) + 1

    def _more_pending(self, pipelines: list[str], buffered: int) -> bool:
        """Events of these pipelines still to come into the batch: pending besides the buffered
        ones and those landed after the round leased. A stream landing on the landing thread
        during every round would otherwise keep each batch open for its whole max_wait, where
        landing in the round (before its lease) committed it at the round's end."""
        with self._arrived_lock:
            late = sum(self._arrived.get(p, 0) for p in pipelines)
        return self.ledger.pending_count(pipelines) - late > buffered

    def _due(self, table: str, buf: _Buffer, force: bool) -> bool:
        if not buf.items:
            return False
        batch = self.config.pipelines[buf.items[0][0].pipeline or ""].batch
        if force or buf.rows >= batch.max_rows or buf.bytes >= batch.max_bytes:
            return True
        waited = self.clock.now() - buf.first_at
        pipelines = [p for p, t in self.table_of.items() if t == table]
        if waited >= batch.max_wait:
            # a backlog behind a slow commit (a catalog on an object store: ~1 s each): commits
            # every max_wait would be most of the time, and every event of the backlog waits for
            # all of them. The window grows to COMMIT_STRETCH x the last commit (capped), so
            # commits stay a fraction of the work; with nothing more pending it commits now.
            stretch = min(COMMIT_STRETCH * self._commit_seconds.get(table, 0.0), MAX_STRETCH)
            return waited >= stretch or not self._more_pending(pipelines, len(buf.items))
        # nothing more is coming for this table right now: waiting would only add latency
        return not self._more_pending(pipelines, len(buf.items))

    def committing_now(self) -> bool:
        # the thread's own flag, cleared before it wakes the loop: a loop woken by the end of a
        # commit must find it ended, not the thread still winding down
        return self._commit_thread is not None and self._commit_running

    def full(self) -> bool:
        """A batch is at its size limits while a commit runs: leasing more now would only hold
        more rows in memory until that commit ends."""
        if not self.committing_now():
            return False
        for buf in list(self.buffers.values()):
            items = list(buf.items)
            if items:
                batch = self.config.pipelines[items[0][0].pipeline or ""].batch
                if buf.rows >= batch.max_rows or buf.bytes >= batch.max_bytes:
                    return True
        return False

    def wait_commits(self) -> None:
        """Until the commit running in the background (if any) has ended."""
        thread = self._commit_thread
        if thread is not None:
            thread.join()
            self._commit_thread = None

    def _flush(self, force: bool) -> bool:
        """Commit the due batches (`force`: every batch with events); False if none was."""
        if self.committing_now():
            return False  # the next batch waits for the commit in progress (and grows meanwhile)
        self.wait_commits()
        due: list[tuple[str, list[tuple[Event, EventOutput]]]] = []
        with self._buffers_lock:
            for table, buf in list(self.buffers.items()):
                if self._due(table, buf, force):
                    self.buffers[table] = _Buffer()
                    due.append((table, buf.items))
        if not due:
            return False
        if self.background:
            thread = threading.Thread(target=self._commit_behind, args=(due,), name="icefloe-commit", daemon=True)
            self._commit_thread, self._commit_running = thread, True
            thread.start()
        else:
            self._commit_due(due)
        return True

    def _commit_due(self, due: list[tuple[str, list[tuple[Event, EventOutput]]]]) -> None:
        self.committing = {ev.id: ev.epoch for _, items in due for ev, _ in items}
        try:
            for table, items in due:
                # a maintenance commit that lost a race to ours goes next (engine.maintenance)
                began = time.monotonic()
                with self._maintenance.gate if self._maintenance is not None else nullcontext(), bind(table=table):
                    self._commit(table, items)
                self._commit_seconds[table] = time.monotonic() - began
        finally:
            self.committing = {}

    def _commit_behind(self, due: list[tuple[str, list[tuple[Event, EventOutput]]]]) -> None:
        try:
            self._commit_due(due)
        except LedgerUnavailableError as exc:
            # their rows are in the table or not; whoever leases them next finds out from its history
            log.warning("%s; the batch's events come back once their leases run out", exc)
        except Exception:  # the loop goes on; the ledger keeps the work
            log.exception("a commit failed; its events come back once their leases run out")
        finally:
            self._commit_running = False
            if self.on_committed is not None:
                self.on_committed()

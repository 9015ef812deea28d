"""Batching: each table's micro-batch, and when it is due for its commit.

A batch is committed when it reaches `batch.max_rows` / `max_bytes`, or nothing more is coming for
its table right now (waiting would only add latency), or it waited `max_wait`, stretched under a
backlog behind slow commits. `Batching` is the `Committer`'s part for it (its attributes are
declared below, set by `Committer.__init__`).
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from icefloe.ledger.base import Event, Ledger
from icefloe.observe.logs import bind
from icefloe.pipelines.runner import EventOutput
from icefloe.runtime import Clock

if TYPE_CHECKING:
    from icefloe.config import ProjectConfig
    from icefloe.engine.maintenance import Maintenance

__all__ = ["COMMIT_STRETCH", "MAX_STRETCH", "Batching"]

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

    if TYPE_CHECKING:

        def _commit(self, table: str, items: list[tuple[Event, EventOutput]]) -> None: ...

    def leasing(self) -> None:
        """A round leases now: what lands from here on is for the next round to take."""
        with self._arrived_lock:
            self._arrived.clear()

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

    def _flush(self, force: bool) -> bool:
        flushed = False
        for table, buf in list(self.buffers.items()):
            if self._due(table, buf, force):
                self.buffers[table] = _Buffer()
                # a maintenance commit that lost a race to ours goes next (engine.maintenance)
                began = time.monotonic()
                with self._maintenance.gate if self._maintenance is not None else nullcontext(), bind(table=table):
                    self._commit(table, buf.items)
                self._commit_seconds[table] = time.monotonic() - began
                flushed = True
        return flushed

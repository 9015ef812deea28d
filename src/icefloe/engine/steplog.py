"""The step records a worker makes, on their way to the ledger in as few transactions as it can.

On PostgreSQL every transaction waits for its WAL flush (~5 ms on a small VM), and one file
made four: its read, checks and staged records, each a transaction of its own. Now they wait
here and ride along with the next transaction the worker makes anyway: the next lease, the
fenced renewal just before a table commit, or the committed marks of that commit. The `staged`
counts (what `_skip_already_committed` needs after a crash) therefore reach the ledger before
the table commit holding their rows, as before; a record written later than it was made is
only a log line that shows up one lease batch late.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from icefloe.ledger.base import Ledger, Step

__all__ = ["StepLog"]


class StepLog:
    """Step records not yet written. The loop adds them; the loop's leases and the commit thread
    beside it (engine.batching) write them, so every change of `pending` holds the lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.pending: list[Step] = []
        self._lock = threading.Lock()

    def add(self, event_ids: list[str], step: str, started_at: float, ended_at: float, detail: dict[str, Any]) -> None:
        steps = [Step(i, step, started_at, ended_at, detail) for i in event_ids]
        with self._lock:
            self.pending += steps

    @contextmanager
    def riding(self) -> Iterator[None]:
        """A ledger transaction carrying the pending records with the calls made inside it; a
        rolled-back one puts them back in front of what was added meanwhile."""
        with self._lock:
            taken, self.pending = self.pending, []
        try:
            with self.ledger.transaction():
                if taken:
                    self.ledger.record_steps(taken)
                yield
        except BaseException:
            with self._lock:
                self.pending[:0] = taken
            raise

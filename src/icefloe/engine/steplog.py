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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from icefloe.ledger.base import Ledger, Step

__all__ = ["StepLog"]


class StepLog:
    """Step records not yet written. Only the worker's loop thread adds and writes them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.pending: list[Step] = []

    def add(self, event_ids: list[str], step: str, started_at: float, ended_at: float, detail: dict[str, Any]) -> None:
        self.pending += [Step(i, step, started_at, ended_at, detail) for i in event_ids]

    @contextmanager
    def riding(self) -> Iterator[None]:
        """A ledger transaction carrying the pending records with the calls made inside it; they
        are dropped from `pending` only once it committed (a rolled-back one keeps them)."""
        written = len(self.pending)
        with self.ledger.transaction():
            if written:
                self.ledger.record_steps(self.pending[:written])
            yield
        del self.pending[:written]

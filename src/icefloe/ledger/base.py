"""The ledger seam: durable per-event state, leases and the step log.

It is three parts, one module each, joined here into `Ledger`:

- ledger/event_seam.py (`EventLedger`): landing, leasing and the fenced writes of the event state
  machine, whose states, arrows, backoff and fencing rule are in ledger/machine.py;
- ledger/view_seam.py (`ViewLedger`): lookups, aggregates and keyset pages;
- ledger/side_seam.py (`SideLedger`): the step log, worker heartbeats, the objects protocol
  (stamps, listing positions, claims) and job locks.

The values they speak in are in ledger/model.py. The policy and the SQL live once in
`ledger/sql.py` and its helpers; the SQLite and PostgreSQL backends only connect. The contract
suite in tests/ledger runs against every backend. Every name below stays importable from here.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager

from icefloe.ledger.event_seam import EventLedger
from icefloe.ledger.machine import STATES, TERMINAL, TRANSITIONS, State
from icefloe.ledger.model import (
    HEARTBEAT_EVERY,
    Bucket,
    Event,
    GroupCount,
    Job,
    JobState,
    LedgerCounts,
    LedgerGauges,
    StateCount,
    Step,
    WorkerInfo,
    event_id,
    local_owner_alive,
    owner_id,
)
from icefloe.ledger.side_seam import BELOW_FLOOR, SideLedger
from icefloe.ledger.view_seam import ViewLedger

__all__ = [
    "State",
    "STATES",
    "TRANSITIONS",
    "TERMINAL",
    "Event",
    "GroupCount",
    "StateCount",
    "LedgerCounts",
    "Bucket",
    "LedgerGauges",
    "Step",
    "Job",
    "WorkerInfo",
    "HEARTBEAT_EVERY",
    "JobState",
    "Ledger",
    "event_id",
    "owner_id",
    "local_owner_alive",
    "BELOW_FLOOR",
]


class Ledger(EventLedger, ViewLedger, SideLedger):
    """Durable event state. All methods are safe to call from several threads and processes."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One transaction around every ledger call made inside it (in this thread): they commit
        together, or none does if an exception leaves the block. A fenced write's
        LeaseLostError caught inside the block leaves the writes it applied to go with the rest."""

    @abstractmethod
    def close(self) -> None: ...

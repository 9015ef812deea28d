"""The side of the ledger seam beside the events: the step log, worker heartbeats, the objects
protocol (stamps, the listing position, claims and the floor under them) and job locks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from icefloe.ledger.model import Job, JobState, Step, WorkerInfo
from icefloe.sources.base import BELOW_FLOOR  # what `claim_stamps` answers below a floor

__all__ = ["BELOW_FLOOR", "SideLedger"]


class SideLedger(ABC):
    """What workers and sources keep in the ledger that is not an event's state."""

    @abstractmethod
    def record_step(self, event_ids: list[str], step: str, started_at: float, ended_at: float, **detail: Any) -> None: ...

    @abstractmethod
    def record_steps(self, steps: Iterable[Step]) -> None:
        """Many step records in one transaction (a lease batch's): the same rows `record_step`
        writes. An empty batch writes nothing."""

    @abstractmethod
    def steps(self, id: str) -> list[Step]: ...

    @abstractmethod
    def heartbeat(self, owner: str, *, stopped: bool = False) -> None:
        """A worker says it is alive (or, `stopped`, that it exited cleanly)."""

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """Every worker that sent a heartbeat, newest first."""

    @abstractmethod
    def object_stamp(self, source: str, key: str) -> str | None:
        """The size/mtime stamp recorded when this object was last landed, if any."""

    @abstractmethod
    def object_stamps(self, source: str, keys: list[str]) -> dict[str, str]:
        """`object_stamp` for many keys in one lookup (a reconcile page): keys never landed are absent."""

    @abstractmethod
    def set_object_stamp(self, source: str, key: str, stamp: str) -> None:
        """Remember it, so a restart's reconcile scan need not hash unchanged objects again."""

    @abstractmethod
    def listing_position(self, source: str) -> str | None:
        """The key a reconcile pass over `source` had got to (None: the first key): a restart's
        pass starts there and goes round once (engine/listing.py)."""

    @abstractmethod
    def set_listing_position(self, source: str, after: str | None) -> None: ...

    @abstractmethod
    def claim_stamps(self, source: str, keys: list[str], stamp: str) -> dict[str, str]:
        """Set `stamp` on each key that has none (or an empty one), atomically; returns every
        key's stamp after: a key showing another stamp was claimed first by someone else.
        A key at or below the source's floor is never claimed again: it shows BELOW_FLOOR."""

    @abstractmethod
    def swap_stamps(self, source: str, old: str, new: str, *, count: int | None = None) -> bool:
        """Every stamp `old` of `source` becomes `new` in one transaction; with `count`, only if
        exactly that many change (else nothing does and the answer is False)."""

    @abstractmethod
    def prune_stamps(self, source: str, upto: str, *, busy: str) -> str | None:
        """Raise the source's floor to `upto` and delete the stamps of keys at or below it, in
        one transaction with every claim (so a claim racing the prune sees the key's stamp or the
        floor, never neither). The floor stops below the first key whose stamp is empty or starts
        with `busy` (a claim in flight), and never falls. Returns the floor."""

    @abstractmethod
    def start_job(self, kind: str, target: str, owner: str, *, stale_after: float) -> Job | None:
        """Record a job as running, unless one of this kind and target already runs (started less
        than `stale_after` seconds ago): then None, so two workers never maintain one table at once."""

    @abstractmethod
    def finish_job(self, job: Job, state: JobState, detail: dict[str, Any], error: str | None = None) -> None: ...

    @abstractmethod
    def jobs(self, *, kind: str | None = None, target: str | None = None, limit: int | None = None) -> list[Job]:
        """Newest first."""


"""The event half of the ledger seam: landing, leasing, the fenced writes of the state machine
(ledger/machine.py), and the commands of the dead-letter queue.

Every lease bumps the event's `epoch`; a worker's writes name the epoch they were leased with and
are refused (`LeaseLostError`) once the lease has moved on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from icefloe.ledger.machine import State
from icefloe.ledger.model import Event

__all__ = ["EventLedger"]


class EventLedger(ABC):
    """Events and their state. All methods are safe to call from several threads and processes."""

    @abstractmethod
    def land(
        self,
        *,
        source: str,
        key: str,
        uri: str,
        content_hash: str,
        size: int,
        pipelines: list[str],
        max_attempts: dict[str, int] | None = None,
        stamp: str = "",
        traceparent: str | None = None,
    ) -> list[Event]:
        """Record an object; one event per pipeline (or one `unrouted`). Returns only new events.
        `traceparent` (W3C) is kept on each: the trace its steps' spans join.

        Bytes equal to the object's current version are that version again (nothing new); any
        other bytes, an earlier version's included, are the next version with new events."""

    @abstractmethod
    def object_events(self, source: str, key: str) -> list[Event]:
        """The events of the object's current version (what `ingest` reports on)."""

    @abstractmethod
    def has_committed_version(self, source: str, key: str, pipeline: str, *, other_than: str) -> bool:
        """Whether another event of this object and pipeline was committed: an append pipeline's
        new version then replaces the rows the earlier one brought."""

    @abstractmethod
    def with_committed_version(self, events: Iterable[Event]) -> set[str]:
        """`has_committed_version` for many events of the ledger in one lookup (a commit batch): the
        ids of those with another committed event of their object and pipeline."""

    @abstractmethod
    def revive_duplicates(self, replacing: Event, present: Callable[[str, str], bool] | None = None) -> list[Event]:
        """`replacing` (a new version, committed) removed the rows its object's previous version
        brought: objects skipped as duplicates of those bytes (and still `present(source, key)`)
        land again as a new version, so their rows do not vanish with them. Returns the events."""

    @abstractmethod
    def same_content(self, pipeline: str, content_hash: str, *, before: Event) -> Event | None:
        """The earliest event of `pipeline` landed before `before`, on another object, with these
        bytes, committed or still pending (`dedupe: {content: true}`)."""

    @abstractmethod
    def lease(
        self,
        owner: str,
        *,
        limit: int,
        ttl: float,
        pipelines: Iterable[str] | None = None,
        ordered: Iterable[str] = (),
        groups: Mapping[str, str] | None = None,
        ordered_by_key: Iterable[str] = (),
    ) -> list[Event]:
        """Take up to `limit` runnable events (queued, retry due, or lease expired) -> running.

        For `ordered` pipelines (upsert, overwrite, replace_source: the last landed must win) an
        event is not taken while an older one of its pipeline is retrying or held by another
        live worker, so commits follow landing order. `groups` (pipeline -> group name) widens
        "its pipeline" to every ordered pipeline of its group (the pipelines sharing a table).
        `ordered_by_key` pipelines (append) wait only for older events of the same object: its
        versions commit in landing order."""

    # Fenced writes: `epochs`/`epoch` name the lease the worker holds (None: an unfenced admin
    # write). Writes to events still held apply; then LeaseLostError(ids=the refused) is raised.

    @abstractmethod
    def release(self, ids: list[str], owner: str, *, epochs: Mapping[str, int] | None = None) -> None:
        """running -> queued, the attempt not counted: handed back untried."""

    @abstractmethod
    def supersede(self, id: str, reason: str, kind: str = "Superseded", *, epoch: int | None = None) -> None:
        """running -> discarded: the object's bytes changed before the event ran (the new bytes
        are their own event), or (`kind` Duplicate) its bytes were loaded already."""

    @abstractmethod
    def renew(self, ids: list[str], owner: str, ttl: float, *, epochs: Mapping[str, int] | None = None) -> None: ...

    @abstractmethod
    def release_dead_owners(self, is_alive: Any) -> int:
        """Expire leases whose owner `is_alive(owner)` says is gone (e.g. a killed local process)."""

    @abstractmethod
    def mark_committed(
        self,
        ids: list[str],
        *,
        table: str,
        snapshot_id: int | None,
        stats: dict[str, dict[str, int]],
        epochs: Mapping[str, int] | None = None,
    ) -> None: ...

    @abstractmethod
    def mark_failed(
        self, id: str, *, error: str, kind: str, transient: bool, backoff: float, max_backoff: float, epoch: int | None = None
    ) -> State:
        """Record a failure: `retrying` with backoff while attempts remain and it is transient, else `dead`."""

    @abstractmethod
    def replay(self, ids: list[str] | None) -> list[str]:
        """dead (and unrouted, after a config fix) -> queued with attempts reset. None = all dead."""

    @abstractmethod
    def discard(self, ids: list[str] | None) -> list[str]: ...

    @abstractmethod
    def requeue_unrouted(self, object_ids: list[tuple[str, str]]) -> None:
        """Forget the `unrouted` records of these (source, key) objects: the config now routes
        them, and they are landed again for their pipelines."""


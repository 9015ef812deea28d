"""The ledger seam: durable per-event state, leases and the step log.

An event is one landed object routed to one pipeline. Its state is an explicit machine:

    landed -> queued -> running -> committed
                 ^         |
                 |         +----> retrying --(lease again)--> running
                 |         +----> dead --(dlq replay)--> queued
                 |         |        +----(dlq discard)--> discarded
                 |         +----> discarded  (superseded: its bytes were replaced before it ran;
                 |         |                     or a duplicate: `dedupe.content` saw its bytes already)
                 +---------+ (released: an older event of an ordered pipeline must go first)
    unrouted  (no route matched; kept and shown, never dropped)

An event is one landing of one *version* of an object: the same bytes delivered again while they
are the object's current version are the same event (a no-op), but an object that changes back to
bytes it had before is a new version and a new event, so the newest landing wins.

Every lease bumps the event's `epoch`; a worker's writes name the epoch they were leased with and
are refused (`LeaseLostError`) once the lease has moved on, so a paused worker whose lease expired
cannot write its stale state over the new owner's.

The policy (transitions, backoff, the ordering rules, job staleness) and the SQL live once in
`ledger/sql.py`; the SQLite and PostgreSQL backends only connect. The contract suite in
tests/ledger runs against every backend.
"""

from __future__ import annotations

import hashlib
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from icefloe.sources.base import BELOW_FLOOR  # what `claim_stamps` answers below a floor

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

State = Literal["landed", "queued", "running", "retrying", "committed", "dead", "discarded", "unrouted"]
STATES: tuple[str, ...] = get_args(State)
TERMINAL = frozenset({"committed", "discarded"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "landed": frozenset({"queued", "unrouted"}),
    # queued -> committed: table history showed it committed before a crash (found at snapshot expiry)
    "queued": frozenset({"running", "committed"}),
    "running": frozenset({"committed", "retrying", "dead", "running", "queued", "discarded"}),
    "retrying": frozenset({"running", "committed", "dead"}),
    "dead": frozenset({"queued", "discarded", "committed"}),
    "unrouted": frozenset({"queued"}),
    "committed": frozenset(),
    "discarded": frozenset(),
}


def event_id(source: str, key: str, content_hash: str, pipeline: str | None, version: int = 0) -> str:
    """Same object, same version, same bytes, same pipeline -> same id, so re-delivery is a no-op.

    `version` counts how often the object's bytes changed; version 0 keeps the id ledgers and
    snapshot summaries written before versions existed already hold."""
    parts = (source, key, content_hash, pipeline or "") + ((str(version),) if version else ())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


# a worker says it is alive (and looks for dead local workers) this often, in seconds
HEARTBEAT_EVERY = 2.0


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def local_owner_alive(owner: str) -> bool:
    """False only for an `owner_id` of this host whose process is gone (a killed worker)."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return True  # another machine's lease: let it expire on its own
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


@dataclass
class Event:
    id: str
    source: str
    key: str
    uri: str
    content_hash: str
    size: int
    pipeline: str | None
    state: State
    attempts: int = 0
    max_attempts: int = 5
    error: str | None = None
    error_kind: str | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    table: str | None = None
    snapshot_id: int | None = None
    landed_at: float = 0.0
    started_at: float | None = None
    committed_at: float | None = None
    updated_at: float = 0.0
    next_attempt_at: float = 0.0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    stamp: str = ""
    version: int = 0
    # grows by one each time the event is leased: a worker's writes name it (fencing)
    epoch: int = 0
    # landing order, from a database sequence (lease order, and the cursor of `page`)
    seq: int = 0
    # W3C traceparent of its landing (observe.tracing): the parent of every step's span
    traceparent: str | None = None

    @property
    def object_ref(self) -> str:
        return f"{self.source}:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class GroupCount:
    """The events of one (source, pipeline, state), counted in the ledger: what `status` shows
    without reading every event."""

    source: str
    pipeline: str | None
    state: str
    events: int
    oldest_landed_at: float | None
    newest_landed_at: float | None
    last_committed_at: float | None
    rows_quarantined: int


@dataclass(frozen=True)
class StateCount:
    """`Ledger.tallies`: a counter kept by the transitions (what `counts` would count)."""

    source: str
    pipeline: str | None
    state: str
    events: int
    rows_quarantined: int
    last_committed_at: float | None


@dataclass
class LedgerCounts:
    """`Ledger.tallies`: events per (source, pipeline, state) with any, and per source the
    objects its events landed (each key once) and its last landing."""

    states: list[StateCount] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    last_landed: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Bucket:
    """Events of one pipeline in one time bucket (`index` buckets after the histogram's start)."""

    pipeline: str | None
    index: int
    events: int
    rows_out: int


@dataclass
class LedgerGauges:
    """`Ledger.gauges`: pipeline -> (pending events, oldest pending landed_at), pipeline -> dead
    events, table -> last committed_at (absent: none yet). Pipelines without any are absent."""

    pending: dict[str, tuple[int, float]] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    last_commit: dict[str, float] = field(default_factory=dict)


@dataclass
class Step:
    event_id: str
    step: str
    started_at: float
    ended_at: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def millis(self) -> float:
        return (self.ended_at - self.started_at) * 1000


JobState = Literal["running", "succeeded", "failed"]


@dataclass
class Job:
    """Work that is not a landed object: a maintenance run over one table, say."""

    id: int
    kind: str
    target: str
    state: JobState
    owner: str
    started_at: float
    ended_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class WorkerInfo:
    """A worker process as its heartbeats describe it (`owner` is an `owner_id`)."""

    owner: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None


class Ledger(ABC):
    """Durable event state. All methods are safe to call from several threads and processes."""

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
    def heartbeat(self, owner: str, *, stopped: bool = False) -> None:
        """A worker says it is alive (or, `stopped`, that it exited cleanly)."""

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """Every worker that sent a heartbeat, newest first."""

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

    @abstractmethod
    def get(self, id: str) -> Event | None: ...

    @abstractmethod
    def find(self, prefix: str) -> Event | None:
        """An event by id or unique id prefix."""

    @abstractmethod
    def events(
        self, *, states: Iterable[str] | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[Event]: ...

    @abstractmethod
    def counts(self) -> list[GroupCount]:
        """One row per (source, pipeline, state) that has events, grouped by the database."""

    @abstractmethod
    def tallies(self) -> LedgerCounts:
        """What `counts` and `object_count` count, read from counters every transition keeps
        exact in its own transaction: a few rows, however many events the ledger holds."""

    @abstractmethod
    def lease_holders(self, named: int = 5) -> dict[str, tuple[int, list[Event]]]:
        """Per owner of running events: how many it holds and its first `named` (landing order),
        owners in the order of their first event."""

    @abstractmethod
    def object_count(self, source: str) -> int:
        """Distinct objects recorded for the source: each (key, bytes) its events landed counts once."""

    @abstractmethod
    def last_error(self, pipeline: str) -> str | None:
        """The error of the pipeline's dead event updated last, if any is dead."""

    @abstractmethod
    def page(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Up to `limit` events in landing order (`seq`), after the `seq` of the previous page's
        last event: keyset paging, so page N costs what page 1 does."""

    @abstractmethod
    def find_by_name(self, name: str, limit: int = 20) -> list[Event]:
        """Events whose key is `name` or ends with `/name` (case-sensitive): exact keys first,
        then newest landing first, so the limit keeps what a person naming a file means."""

    def count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
    ) -> int:
        """How many events `page` would walk through from `after` on (what is left to page).

        Counted a page at a time here, in bounded memory; a backend overrides it with a COUNT."""
        names = None if states is None else list(states)
        total, cursor = 0, after
        while batch := self.page(states=names, pipeline=pipeline, source=source, after=cursor, limit=10_000):
            total, cursor = total + len(batch), batch[-1].seq
        return total

    @abstractmethod
    def search(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Up to `limit` events, newest landing first, landed in [since, until), with `seq` below
        `before` (the previous page's last): keyset paging backwards, for the dashboard."""

    @abstractmethod
    def search_count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many events `search` pages through with these filters."""

    @abstractmethod
    def histogram(self, column: str, *, since: float, bucket: float, states: Iterable[str] | None = None) -> list[Bucket]:
        """Events per pipeline per `bucket` seconds of `column` (landed_at, committed_at or
        updated_at) from `since` on, counted by the database; empty buckets are left out."""

    @abstractmethod
    def record_step(self, event_ids: list[str], step: str, started_at: float, ended_at: float, **detail: Any) -> None: ...

    @abstractmethod
    def steps(self, id: str) -> list[Step]: ...

    @abstractmethod
    def gauges(self, tables: list[str]) -> LedgerGauges:
        """What a /metrics scrape reads from the ledger, in one indexed query: per pipeline the
        pending events and the oldest one's landing, the dead-lettered events; per table of
        `tables`, its last commit."""

    @abstractmethod
    def pending_count(self, pipelines: Iterable[str] | None = None) -> int:
        """Events that still need work: landed, queued, running, retrying."""

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

    @abstractmethod
    def close(self) -> None: ...

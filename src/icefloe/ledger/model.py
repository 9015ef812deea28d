"""The values the ledger seam speaks in: events, the counts and gauges read from it, steps, jobs
and workers, and how events and workers are named.

An event is one landing of one *version* of an object: the same bytes delivered again while they
are the object's current version are the same event (a no-op), but an object that changes back to
bytes it had before is a new version and a new event, so the newest landing wins (`event_id`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Literal

from icefloe.ledger.machine import State

__all__ = [
    "Event", "GroupCount", "StateCount", "LedgerCounts", "Bucket", "LedgerGauges", "Step", "Job", "JobState",
    "WorkerInfo", "HEARTBEAT_EVERY", "event_id", "owner_id", "local_owner_alive",
]  # fmt: skip


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


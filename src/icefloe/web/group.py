"""Group commit: the ledger writes of landings that arrive together, in one transaction.

A 2xx needs its event committed durably: on SQLite a WAL fsync, and SQLite has one writer, so
landing one request at a time held a host to about one request per fsync (README, bench 12).
Here a request whose object is already durable queues its landing, and the first one to find no
commit running becomes the leader: it takes what is queued (up to `max_batch`), writes all of
it in one transaction (events, steps, object stamps, idempotency answers), commits once, and
hands each request its events. The others wait meanwhile, and those that arrived during a
commit go together in the next one. No timer: a lone request commits at once, and under load
the batches grow by themselves, as large as the commit is slow.

If the shared transaction fails nothing of it is committed, and every request in it gets the
error: none is told its data is accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from icefloe.ledger import Event
from icefloe.sources import Landed

__all__ = ["GroupCommit", "Landing"]

# a batch's transaction holds the ledger's one writer: past this many, the worker's commits
# would wait too long behind it (and a failed batch takes fewer requests down with it)
MAX_BATCH = 64


@dataclass(eq=False)
class Landing:
    """One durable object to record: what `write` reads, and what it hands back."""

    landed: Landed
    pipelines: list[str]
    traceparent: str | None = None
    # run inside the transaction with this landing's events (the Idempotency-Key's answer is
    # stored with them, in the same commit)
    then: Callable[[list[Event]], None] | None = None
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    """`land` blocks until the landing is committed with its batch, or its batch failed.

    `write(batch)` records every landing of the batch in one transaction and sets each one's
    `events`; it raises if the transaction was not committed."""

    def __init__(self, write: Callable[[list[Landing]], None], *, max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[Landing] = []
        self._busy = False
        # what the batches were (for /metrics-style curiosity, the bench and the tests)
        self.batches = 0
        self.landings = 0
        self.largest = 0

    def waiting(self) -> int:
        """Landings queued for the next commit."""
        with self._cv:
            return len(self._queue)

    def land(self, landing: Landing) -> list[Event]:
        with self._cv:
            self._queue.append(landing)
        while True:
            with self._cv:
                while self._busy and not landing.done:
                    self._cv.wait()
                if landing.done:
                    break
                # nobody is committing: lead the next batch (ours is in it unless more than
                # max_batch queued before us; then we lead again after it)
                self._busy = True
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._commit(batch)
        if landing.error is not None:
            raise landing.error
        return landing.events

    def _commit(self, batch: list[Landing]) -> None:
        try:
            self._write(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets it, the leader included
            for item in batch:
                item.events, item.error = [], exc
        finally:
            with self._cv:
                for item in batch:
                    item.done = True
                self._busy = False
                self.batches += 1
                self.landings += len(batch)
                self.largest = max(self.largest, len(batch))
                self._cv.notify_all()

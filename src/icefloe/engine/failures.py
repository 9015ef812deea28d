"""Failures: an event that failed, or lost the ledger mid-way, and the newer events of its order
that must wait for it (`_held_back`, and those in its table's buffer). `CommitFailures` is the
`Committer`'s part for it (its attributes are declared below, set by `Committer.__init__`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from icefloe.engine.batching import _Buffer
from icefloe.errors import LeaseLostError, LedgerUnavailableError, describe, is_transient
from icefloe.lake.catalog import catalog_outage
from icefloe.ledger.base import Event, Ledger
from icefloe.observe.metrics import NullMetrics
from icefloe.pipelines.runner import EventOutput

if TYPE_CHECKING:
    from icefloe.config import ProjectConfig

__all__ = ["CommitFailures", "held_key"]

log = logging.getLogger("icefloe")


def held_key(ev: Event) -> str:
    """How `_held_back` names one object of an append pipeline (its versions go in order)."""
    return f"{ev.pipeline}\0{ev.object_ref}"


class CommitFailures:
    config: ProjectConfig
    ledger: Ledger
    owner: str
    metrics: NullMetrics
    table_of: dict[str, str]
    ordered: list[str]
    ordered_by_key: list[str]
    buffers: dict[str, _Buffer]
    # pipelines (and append objects) whose older event will retry: the engine's lease loop
    # hands their newer events back; cleared each round, never replaced (the engine reads it)
    _held_back: set[str]
    # the same, of events failed in a commit on its thread: kept until the next round's lease (a
    # round may have leased their newer events before the failure, and clears `_held_back`)
    _held_behind: set[str]
    _commit_thread: threading.Thread | None
    _buffers_lock: threading.RLock
    _notify: Callable[[Event, str], None]

    if TYPE_CHECKING:

        def _discard(self, pipeline: str, out: EventOutput) -> None: ...

        def _order_group(self, pipeline: str) -> set[str]: ...

    def holds(self, ev: Event) -> bool:
        """An older event of its order will retry: this one waits (handed back untried)."""
        with self._buffers_lock:
            return any(name in held for held in (self._held_back, self._held_behind) for name in (ev.pipeline, held_key(ev)))

    def _put_back(self, items: list[tuple[Event, EventOutput]]) -> None:
        """Hand events back untried (an older one of their order group must commit first)."""
        if items:
            try:
                self.ledger.release([ev.id for ev, _ in items], self.owner, epochs={ev.id: ev.epoch for ev, _ in items})
            except LeaseLostError as lost:
                log.warning("lease lost on %s before they were handed back", ", ".join(lost.ids[:5]))
            for ev, out in items:
                self._discard(ev.pipeline or "", out)

    def _fail(self, events: list[Event], exc: BaseException, *, stage: str = "commit") -> list[str]:
        """Record the failure of each event (counted under `stage`); returns their new states."""
        exc = catalog_outage(exc, self.config.catalog) or exc  # a catalog outage says so, and retries
        transient = is_transient(exc)
        text = describe(exc)
        for _ in events:
            self.metrics.error(stage, exc)
        if isinstance(exc, LedgerUnavailableError):
            return self._hand_back(events, text)
        states: list[str] = []
        for ev in events:
            retry = self.config.pipelines[ev.pipeline].retry if ev.pipeline in self.config.pipelines else None
            last = transient and ev.attempts >= ev.max_attempts
            try:
                state = self.ledger.mark_failed(
                    ev.id, error=f"{text} (gave up after {ev.attempts} attempts)" if last else text,
                    kind=type(exc).__name__, transient=transient,
                    backoff=retry.backoff if retry else 1.0, max_backoff=retry.max_backoff if retry else 60.0, epoch=ev.epoch,
                )  # fmt: skip
            except LeaseLostError:
                self.metrics.lease_lost(1)
                log.warning("event %s (%s): lease lost (another worker holds it now); dropping it", ev.id, ev.object_ref)
                states.append("lost")
                continue
            log.warning("event %s (%s) %s: %s", ev.id, ev.object_ref, state, text)
            ev.state = state
            self._notify(ev, state)
            if state == "retrying" and (ev.pipeline in self.ordered or ev.pipeline in self.ordered_by_key):
                self._hold_back(ev)
            states.append(state)
        return states

    def _hand_back(self, events: list[Event], text: str) -> list[str]:
        """The ledger went away mid-event: that is no failure of the event, so it must not use up
        its attempts (a file that outlived a few killed workers would go dead at the next blip).
        Handed back untried once the ledger answers again, else its lease runs out; newer events
        of its order group wait for it as for a retry. Returns "retrying" for each."""
        try:
            self.ledger.release([ev.id for ev in events], self.owner, epochs={ev.id: ev.epoch for ev in events})
        except Exception as again:  # noqa: BLE001 - still down: the leases expire and the events come back
            log.warning("could not hand back %d event(s) (%s); their leases run out", len(events), describe(again))
        for ev in events:
            log.warning("event %s (%s) handed back: %s", ev.id, ev.object_ref, text)
            if ev.pipeline in self.ordered or ev.pipeline in self.ordered_by_key:
                self._hold_back(ev)
        return ["retrying"] * len(events)

    def _hold_back(self, failed: Event) -> None:
        """An ordered pipeline's event will retry: newer ones of its order group wait for it (of an
        append pipeline outside any order group: newer versions of that object)."""
        with self._buffers_lock:  # the loop appends to the buffer meanwhile (a background commit)
            assert failed.pipeline is not None
            by_key = failed.pipeline not in self.ordered
            group = {failed.pipeline} if by_key else set(self._order_group(failed.pipeline))
            behind = threading.current_thread() is self._commit_thread
            (self._held_behind if behind else self._held_back).update([held_key(failed)] if by_key else group)
            buf = self.buffers.get(self.table_of[failed.pipeline])
            if buf is None:
                return
            newer = [
                (ev, out) for ev, out in buf.items
                if ev.pipeline in group and (ev.seq, ev.landed_at) >= (failed.seq, failed.landed_at)
                and (not by_key or ev.object_ref == failed.object_ref)
            ]  # fmt: skip
            if newer:
                buf.items = [item for item in buf.items if item not in newer]
                buf.rows -= sum(out.data.num_rows for _, out in newer)
                buf.bytes -= sum(out.data.nbytes for _, out in newer)
                self._put_back(newer)

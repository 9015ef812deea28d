"""The `Engine`: lease events, run their pipelines (engine.processing), and the `drain` / `serve`
loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from icefloe.engine.committing import Committer
from icefloe.engine.fetching import Fetcher
from icefloe.engine.heap import freeze_startup_heap
from icefloe.engine.landing import Lander
from icefloe.engine.processing import EventProcessing
from icefloe.engine.summary import RunSummary, Tally
from icefloe.errors import LeaseLostError, LedgerUnavailableError
from icefloe.lake.writer import TableWriter
from icefloe.ledger.base import HEARTBEAT_EVERY, Event, local_owner_alive, owner_id
from icefloe.observe.metrics import metrics_for
from icefloe.observe.tracing import tracing_for
from icefloe.pipelines.runner import EventOutput, PipelineRunner
from icefloe.runtime import Runtime
from icefloe.sources.base import Landed, ObjectRef, Source

if TYPE_CHECKING:
    from icefloe.upkeep import Upkeep  # the lake's maintenance code loads on first use

__all__ = ["Engine"]

log = logging.getLogger("icefloe")
# seconds `run` waits after the ledger could not be reached before it tries again
LEDGER_RETRY = 2.0
# seconds of listing a running worker gives one reconcile call before it steps again
RECONCILE_SLICE = 2.0


class Engine(EventProcessing):
    """One worker on a `Runtime`: it owns a `Lander` (objects -> events), a `Committer` (rows ->
    snapshots) and, from the first maintenance it needs, an `Upkeep`, and runs the loop that
    leases events, runs their pipelines and hands the rows on."""

    def __init__(self, runtime: Runtime, *, lease_limit: int = 16) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.ledger = runtime.ledger
        self.clock = runtime.clock
        self.lease_limit = lease_limit
        self.runners = {name: PipelineRunner(name, cfg, runtime.root) for name, cfg in self.config.pipelines.items()}
        self.tally = Tally()
        self._notify_lock = threading.Lock()
        self.metrics = metrics_for(self.config)
        self.tracing = tracing_for(runtime)
        self._reconcile_at: dict[str, float] = {}  # source -> when its next reconcile pass is due
        self.on_event: Callable[[Event, str], None] | None = None
        # (event, bytes of its file read, records so far), for a progress bar on long files
        self.progress: Callable[[Event, int, int], None] | None = None
        self._housekept = 0.0
        self._in_flight: set[str] = set()  # the event _process is working on (it can take minutes)
        self._keepalive: tuple[threading.Thread, threading.Event] | None = None
        self.lander = Lander(runtime)
        self.lander.on_landed = self._landed
        self._wake = threading.Event()  # set by a landing: the idle loop leases at once
        self.fetcher = Fetcher()  # small objects' GETs, overlapped with the parsing of earlier ones
        self.committer = Committer(runtime, owner_id(), notify=self._notify)
        self.committer.on_committed = self._wake.set  # the next batch goes at once
        # the committer's table layout and buffers, which leasing and processing read too (the
        # same objects: never replaced, only changed in place)
        self.table_of = self.committer.table_of
        self.ordered, self.order_groups = self.committer.ordered, self.committer.order_groups
        self.ordered_by_key = self.committer.ordered_by_key
        self.buffers = self.committer.buffers
        self.steplog = self.committer.steplog
        self._held_back = self.committer._held_back

    @property
    def owner(self) -> str:
        """Who this worker is in the ledger (leases, heartbeats, maintenance jobs)."""
        return self.committer.owner

    @owner.setter
    def owner(self, value: str) -> None:
        self.committer.owner = value

    @property
    def upkeep(self) -> Upkeep:
        return self.committer.upkeep

    def _landed(self, events: list[Event]) -> None:
        self.committer.arrived(events)
        self._wake.set()

    def _notify(self, ev: Event, state: str) -> None:
        with self._notify_lock:  # the loop and the commit thread both settle events
            self.tally.seen(ev.id, state)
            self.metrics.settled(ev, state)
            if self.on_event is not None:
                self.on_event(ev, state)

    # -- the parts' own API, for callers that hold the engine (Project.ingest, tests) ------------
    def land(self, source: Source, target: ObjectRef | str, *, traceparent: str | None = None) -> list[Event]:
        return self.lander.land(source, target, traceparent=traceparent)

    def land_object(self, landed: Landed, *, traceparent: str | None = None) -> list[Event]:
        return self.lander.land_object(landed, traceparent=traceparent)

    def reconcile(self, names: Iterable[str] | None = None) -> int:
        return self.lander.reconcile(names)

    def reroute(self, names: Iterable[str] | None = None) -> int:
        return self.lander.reroute(names)

    def notice(self, source: Source, key: str, complete: bool) -> None:
        self.lander.notice(source, key, complete)

    @property
    def _candidates(self) -> dict[tuple[str, str], tuple[Source, bool]]:
        return self.lander._candidates

    def writer(self, table: str, pipeline: str | None = None) -> TableWriter:
        return self.committer.writer(table, pipeline)

    def _commit(self, table: str, items: list[tuple[Event, EventOutput]]) -> None:
        self.committer._commit(table, items)

    def _flush(self, force: bool) -> bool:
        return self.committer._flush(force)

    def summary(self) -> RunSummary:
        """What this engine did so far (other workers' commits are theirs, not counted)."""
        return self.tally.summary(self.ledger)

    def step(self) -> bool:
        """One round: land (unless the landing thread does), lease, process, flush what is due.
        True if anything happened."""
        self._housekeep()
        if not self.lander.threaded:  # `serve` lands notices on the landing thread
            self.lander._land_candidates()
        if self.committer.full():  # a batch at its limits waits for the commit in progress
            return False
        leasing = time.time()
        self.committer.leasing()
        with self.steplog.riding():  # the last batch's step records go with this lease
            events = self.ledger.lease(
                self.owner, limit=self.lease_limit, ttl=self.config.lease, ordered=self.ordered,
                groups=self.order_groups, ordered_by_key=self.ordered_by_key,
            )
        if events and self.tracing.enabled:
            leased = time.time()
            for ev in events:
                self.tracing.span(ev, "lease", leasing, leased, owner=self.owner, epoch=ev.epoch)
        self._skip_already_committed(events)
        self._held_back.clear()
        sources = self.runtime.sources
        self.fetcher.ahead([(ev, sources[ev.source]) for ev in events if ev.state == "running" and ev.source in sources])
        for ev in events:
            if ev.state != "running":  # found committed, or failed before it could start
                continue
            if self.committer.holds(ev):
                try:  # an older event of its pipeline must go first
                    self.ledger.release([ev.id], self.owner, epochs={ev.id: ev.epoch})
                except LeaseLostError:
                    log.warning("event %s: lease lost before it was handed back", ev.id)
                continue
            self._process(ev)
        self.fetcher.forget()
        flushed = self._flush(force=not events)
        self.committer._maintain()
        if flushed:
            # once the first commit has loaded what a worker keeps for good (engine.heap): out
            # of every later full collection, which would walk it again and again
            freeze_startup_heap()
        return bool(events) or flushed

    # -- loops ----------------------------------------------------------------------------------
    def _housekeep(self, force: bool = False) -> None:
        """Every few seconds: take back the work of dead local workers at once instead of after
        their lease runs out (the keep-alive thread beats and renews this worker's own leases)."""
        now = self.clock.now()
        if not force and now - self._housekept < HEARTBEAT_EVERY:
            return
        self._housekept = now
        released = self.ledger.release_dead_owners(local_owner_alive)
        if released:
            log.info("took back work from %d dead local worker(s)", released)

    def start(self) -> None:
        self.ledger.heartbeat(self.owner)  # listed in `status` at once, not after the first beat
        self._housekeep(force=True)
        if self._keepalive is None:
            stop = threading.Event()
            thread = threading.Thread(target=self._keep_alive, args=(stop,), name="icefloe-keepalive", daemon=True)
            thread.start()
            self._keepalive = (thread, stop)

    def _keep_alive(self, stop: threading.Event) -> None:
        """While the loop is busy with one long event (a slow transform, a huge file), keep the
        heartbeat going and the leases of the events this worker holds: otherwise they expire
        under it and another worker does the same work again."""
        every = max(0.05, min(HEARTBEAT_EVERY, self.config.lease / 3))
        while not self.clock.wait(stop, every):
            try:
                buffered = {ev.id: ev.epoch for buf in list(self.buffers.values()) for ev, _ in list(buf.items)}
                buffered.update(self.committer.committing)  # a long commit keeps its leases too
                running = sorted(set(self._in_flight) - set(buffered))
                self.ledger.heartbeat(self.owner)
                if running:
                    self.ledger.renew(running, self.owner, self.config.lease)
                if buffered:
                    self.ledger.renew(sorted(buffered), self.owner, self.config.lease, epochs=buffered)
            except LeaseLostError as lost:
                # the fenced renewal before the commit drops them: their rows never reach the table
                log.warning("lease lost on %d buffered event(s) (%s); they are dropped at the commit", len(lost.ids), ", ".join(lost.ids[:5]))
            except Exception:  # a missed beat is retried; the loop owns the errors
                log.debug("keepalive failed", exc_info=True)

    def sign_off(self, *, keep_maintenance: bool = False) -> None:
        """A clean exit: `status` stops listing this worker. `keep_maintenance`: runs handed to
        the maintenance thread go on (the engine is used again: `Project.ingest`); `close` ends them."""
        self.committer.wait_commits()
        if self.committer._maintenance is not None and not keep_maintenance:
            self.committer._maintenance.close()
        if self._keepalive is not None:
            thread, stop = self._keepalive
            stop.set()
            thread.join(timeout=10)
            self._keepalive = None
        self.fetcher.close()
        with self.steplog.riding():  # records of events handed back since the last transaction
            self.ledger.heartbeat(self.owner, stopped=True)

    def close(self, stop: threading.Event | None = None) -> None:
        """Let the maintenance runs handed over finish (until `stop`), then stop its thread."""
        if self.committer._maintenance is not None:
            self.committer._maintenance.wait(stop)
            self.committer._maintenance.close()

    def drain(
        self, stop: threading.Event | None = None, *, reconcile: bool = True, keep_maintenance: bool = False
    ) -> None:
        """Process until nothing is pending (retries included), then return: `run --once`
        reconciles once at start; `ingest` (reconcile=False) lands only what it was given.
        `run --once` waits for the maintenance its commits made due; with `keep_maintenance` it
        goes on beside the next drain (an engine used again; `close` waits for it)."""
        self.start()
        try:
            if reconcile:
                self.reconcile()
                for source in self.runtime.sources.values():
                    source.pull(self.lander._noticer(source))
            while not (stop and stop.is_set()):
                if self.step():
                    continue
                idle = not self.lander._candidates and not any(b.items for b in self.buffers.values())
                if idle and self.ledger.pending_count() == 0:
                    break
                time.sleep(0.05)  # only retries with a backoff remain
            self._flush(force=True)
            if reconcile:
                for source in self.runtime.sources.values():
                    source.confirm()
            self.committer._maintain()
            if self.committer._maintenance is not None and not keep_maintenance:
                self.committer._maintenance.wait(stop)  # `run --once` ends with its tables maintained
        finally:
            self.sign_off(keep_maintenance=keep_maintenance)

    def _reconcile_due(self) -> None:
        """Each source's listing pass on its own `reconcile` schedule (watch notices land in between)."""
        now = time.monotonic()
        due = [name for name, at in self._reconcile_at.items() if now >= at]
        if not due:
            return
        for name in due:
            self._reconcile_at[name] = now + self.config.sources[name].reconcile
        self.lander.reconcile(due, budget=RECONCILE_SLICE)
        for name in self.lander.unfinished & set(due):
            self._reconcile_at[name] = now  # the rest of the pass after the next step

    def serve(self, stop: threading.Event, poll: float = 0.02) -> None:
        """Watch sources and process until `stop` is set: `run`."""
        self.start()
        stoppers = [source.watch(self.lander._noticer(source)) for source in self.runtime.sources.values()]
        from icefloe.upkeep import shares_one_database  # the lake's maintenance code, loaded late

        # commits on a thread of their own beside the loop (engine.batching); an in-memory
        # catalog is one database per connection, so its commits stay in the loop
        self.committer.background = not shares_one_database(self.runtime)
        try:
            self._reconcile_at = dict.fromkeys(self.runtime.sources, 0.0)
            self._reconcile_due()
            # after the first listing has landed what piled up: a notice of a newer object
            # must not land before the older ones it finds (the ordering rule)
            self.lander.start()
            while not stop.is_set():
                try:
                    self._reconcile_due()
                    busy = self.step()
                except LedgerUnavailableError as exc:
                    # expected while the server restarts: one line, and no retry every poll
                    log.warning("%s; retrying in %.0f s", exc, LEDGER_RETRY)
                    log.debug("ledger unavailable", exc_info=True)
                    stop.wait(LEDGER_RETRY)
                    continue
                except Exception:  # noqa: BLE001 - keep serving; the ledger keeps the work
                    log.exception("worker step failed; retrying")
                    busy = False
                if not busy:
                    self.committer._tick()
                    # a landing wakes the loop: a notice waits for no poll interval
                    self._wake.wait(poll)
                    self._wake.clear()
            self.committer.wait_commits()
            self.committer.background = False
            self._flush(force=True)
        finally:
            for stopper in stoppers:
                stopper()
            self.lander.stop()
            self.committer.wait_commits()
            self.committer.background = False
            self.sign_off()

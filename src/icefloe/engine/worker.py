"""The `Engine`: lease events, run their pipelines, and the `drain` / `serve` loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from icefloe.engine.committing import Committer, _Buffer, held_key
from icefloe.engine.fetching import Fetcher
from icefloe.engine.heap import freeze_startup_heap
from icefloe.engine.landing import Lander
from icefloe.engine.summary import RunSummary, Tally
from icefloe.errors import IcefloeError, LeaseLostError, LedgerUnavailableError, ObjectChangedError
from icefloe.lake.writer import TableWriter, committed_event_ids
from icefloe.ledger.base import HEARTBEAT_EVERY, Event, local_owner_alive, owner_id
from icefloe.observe.logs import bind
from icefloe.observe.metrics import metrics_for
from icefloe.observe.tracing import event_traceparent, trace_id_of, tracing_for
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


class Engine:
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
        self.fetcher = Fetcher()  # small objects' GETs, overlapped with the parsing of earlier ones
        self.committer = Committer(runtime, owner_id(), notify=self._notify)
        # the committer's table layout and buffers, which leasing and processing read too (the
        # same objects: never replaced, only changed in place)
        self.table_of = self.committer.table_of
        self.ordered, self.order_groups = self.committer.ordered, self.committer.order_groups
        self.ordered_by_key = self.committer.ordered_by_key
        self.buffers = self.committer.buffers
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

    def _notify(self, ev: Event, state: str) -> None:
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
        """One round: land, lease, process, flush what is due. True if anything happened."""
        self._housekeep()
        self.lander._land_candidates()
        leasing = time.time()
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
            if ev.pipeline in self._held_back or held_key(ev) in self._held_back:
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

    def _skip_already_committed(self, events: list[Event]) -> None:
        """After a crash between commit and ledger update the table history has the answer."""
        retried = [ev for ev in events if ev.attempts > 1 and ev.pipeline in self.table_of]
        history = {}
        for table in {self.table_of[ev.pipeline or ""] for ev in retried}:
            try:
                loaded = self.writer(table).load()
            except Exception as exc:  # noqa: BLE001 - the catalog is down: these events retry later
                self.committer._fail([ev for ev in retried if self.table_of[ev.pipeline or ""] == table], exc)
                continue
            history[table] = committed_event_ids(loaded) if loaded is not None else {}
        for ev in retried:
            table = self.table_of[ev.pipeline or ""]
            if ev.state == "running" and ev.id in history.get(table, {}):
                staged = [s.detail for s in self.ledger.steps(ev.id) if s.step == "staged"]
                stats = {ev.id: staged[-1]} if staged else {}
                try:
                    self.ledger.mark_committed(
                        [ev.id], table=table, snapshot_id=history[table][ev.id], stats=stats, epochs={ev.id: ev.epoch}
                    )
                except LeaseLostError:
                    log.warning("event %s: lease lost (another worker holds it now); dropping it", ev.id)
                    ev.state = "discarded"  # not ours any more: the loop skips it, nobody is told
                    continue
                ev.state = "committed"
                self._notify(ev, "committed")
                log.info("event %s was already in %s (snapshot %s)", ev.id, table, history[table][ev.id])
            elif ev.state == "running" and table in history and self._settled(ev):
                # maintenance records a commit in the ledger before its snapshot expires; the
                # history read above, taken after the lease, can already miss that snapshot
                ev.state = "committed"
                self._notify(ev, "committed")

    def _settled(self, ev: Event) -> bool:
        now = self.ledger.get(ev.id)
        return now is not None and now.state == "committed"

    def _process(self, ev: Event) -> None:
        self._in_flight.add(ev.id)
        # every log line about this event names it (--log-format json)
        context = bind(
            event_id=ev.id, pipeline=ev.pipeline, table=self.table_of.get(ev.pipeline or ""),
            trace_id=trace_id_of(event_traceparent(ev)),
        )  # fmt: skip
        try:
            with context:
                self._process_one(ev)
        finally:
            self._in_flight.discard(ev.id)

    def _process_one(self, ev: Event) -> None:
        assert ev.pipeline is not None
        began = time.time()
        source = self.runtime.sources.get(ev.source)
        try:
            if source is None:
                raise IcefloeError(f"source {ev.source!r} is no longer configured")
            if ev.pipeline not in self.runners:
                raise IcefloeError(f"pipeline {ev.pipeline!r} is no longer configured")
            runner = self.runners[ev.pipeline]
            writer = self.writer(self.table_of[ev.pipeline], ev.pipeline)
            # an object store pins the read to the event's version (one GET) instead of a HEAD
            # before and after it; a pinned read that finds another version or none checks then
            pinned = bool(ev.stamp) and source.pins_reads
            if not pinned and self._superseded(ev, source):
                return
            duplicate = self._duplicate(ev)
            if duplicate is True:
                return
            # only modes that append whole files can write rows ahead of the commit
            dedupe = runner.config.dedupe
            can_spill = writer.config.mode in ("append", "replace_source") and not (dedupe and dedupe.key)
            pipeline = ev.pipeline
            spill = (lambda target: self.writer(self.committer._target_table(pipeline, target), pipeline).stream(ev.object_ref)) if can_spill else None
            tell = self.progress
            progress = (lambda done, records: tell(ev, done, records)) if tell is not None else None
            if duplicate:  # a new version whose bytes another object holds: no rows of its own
                now = time.time()
                out = runner.empty(ev, ("duplicate", now, now, {"reason": duplicate}))
            else:
                # the folder's own file, the object in memory or in place, or spooled (engine.fetching)
                try:
                    with self.fetcher.readable(source, ev, pinned) as path:
                        out = runner.run(ev, path, spill, runner.config.batch.spill_bytes, progress=progress)
                except ObjectChangedError:
                    if pinned and self._superseded(ev, source):
                        return
                    raise
            if (not pinned or duplicate) and self._superseded(ev, source):  # rewritten while we read it
                self.committer._discard(ev.pipeline, out)
                return
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the worker
            self.tracing.span(ev, "process", began, time.time(), error=exc, object=ev.object_ref)
            self.committer._fail([ev], exc, stage="process")
            return
        self.metrics.read(ev.pipeline, ev.size)
        for name, started, ended, detail in out.steps:
            self.ledger.record_step([ev.id], name, started, ended, **detail)
            self.tracing.span(ev, name, started, ended, **detail)
        now = time.time()
        # the counts survive a crash before the commit is recorded (see _skip_already_committed)
        self.ledger.record_step([ev.id], "staged", now, now, **out.stats)
        buf = self.buffers.setdefault(self.table_of[ev.pipeline], _Buffer())
        if not buf.items:
            buf.first_at = self.clock.now()
        buf.items.append((ev, out))
        buf.rows += out.data.num_rows
        buf.bytes += out.data.nbytes

    def _superseded(self, ev: Event, source: Source) -> bool:
        """The bytes this event stands for were replaced: the new bytes are their own event."""
        current = source.head(ev.key)
        if current is None:
            # not bad input and nothing a retry could read: discarded with the reason, not dead
            reason = f"{ev.object_ref} was deleted before it was processed"
            try:
                self.ledger.supersede(ev.id, reason, kind="Deleted", epoch=ev.epoch)
            except LeaseLostError:
                log.warning("event %s: lease lost (another worker holds it now); dropping it", ev.id)
                return True
            # forget its stamp: the same bytes put back (same ETag) are a new landing
            self.ledger.set_object_stamp(ev.source, ev.key, "")
            log.info("event %s discarded: %s", ev.id, reason)
            self._notify(ev, "discarded")
            return True
        if not ev.stamp or current.version == ev.stamp:
            return False
        try:
            same = source.describe(current).content_hash == ev.content_hash  # landed again, same bytes?
        except ObjectChangedError:
            same = False
        if same:
            return False
        try:
            self.ledger.supersede(
                ev.id, f"{ev.object_ref} was replaced before it was processed; the new version is a new event", epoch=ev.epoch
            )
        except LeaseLostError:
            log.warning("event %s: lease lost (another worker holds it now); dropping it", ev.id)
            return True
        self.notice(source, ev.key, False)
        self._notify(ev, "discarded")
        return True

    def _duplicate(self, ev: Event) -> bool | str:
        """`dedupe: {content: true}`: these bytes were loaded (or are loading) from another object.
        True: discarded. A reason: a new version of an object whose earlier rows are in an `append`
        or `replace_source` table, committed as zero rows so those rows leave."""
        cfg = self.config.pipelines[ev.pipeline or ""]
        dedupe = cfg.dedupe
        if dedupe is None or not dedupe.content:
            return False
        earlier = self.ledger.same_content(ev.pipeline or "", ev.content_hash, before=ev)
        if earlier is None:
            return False
        reason = f"same bytes as {earlier.object_ref} (event {earlier.id}, {earlier.state}): not loaded again (dedupe.content)"
        if cfg.write.mode in ("append", "replace_source") and self.ledger.has_committed_version(
            ev.source, ev.key, ev.pipeline or "", other_than=ev.id
        ):
            log.info("event %s (%s): %s; its earlier version's rows are removed", ev.id, ev.object_ref, reason)
            return reason + "; the rows of its earlier version are removed"
        try:
            self.ledger.supersede(ev.id, reason, kind="Duplicate", epoch=ev.epoch)
        except LeaseLostError:
            log.warning("event %s: lease lost (another worker holds it now); dropping it", ev.id)
            return True
        log.info("event %s (%s) discarded: %s", ev.id, ev.object_ref, reason)
        self.metrics.duplicate(ev.pipeline or "")
        self._notify(ev, "discarded")
        return True

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
        if self.committer._maintenance is not None and not keep_maintenance:
            self.committer._maintenance.close()
        if self._keepalive is not None:
            thread, stop = self._keepalive
            stop.set()
            thread.join(timeout=10)
            self._keepalive = None
        self.fetcher.close()
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
        try:
            self._reconcile_at = dict.fromkeys(self.runtime.sources, 0.0)
            self._reconcile_due()
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
                    stop.wait(poll)
            self._flush(force=True)
        finally:
            for stopper in stoppers:
                stopper()
            self.sign_off()

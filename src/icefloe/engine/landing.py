"""Landing: a complete object becomes ledger events (one per routed pipeline).

What it costs must not grow with the source: a watch notice or an `ingest` lands the objects it
names (one `head` and one stamp lookup each). Only `reconcile` lists a source, page by page with
one ledger lookup per page, and it runs at start and every `sources.NAME.reconcile`, never per
ingest or per drain.

A running worker (`Engine.serve`) lands watch notices on a thread of its own (`start`): the
engine's loop spends most of a busy round in a commit (hundreds of ms on a slow catalog), and a
notice or a NATS batch waiting for that round to end was most of its publish -> landed time. The
ledger is shared with the loop under its own lock (ledger calls are short; the catalog commit
holds no ledger lock). Landing stays one at a time (`_landing`): the thread's and the reconcile
pass's, so landing order within each is what it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from icefloe.engine.listing import ring
from icefloe.errors import IcefloeError, LedgerUnavailableError, ObjectChangedError
from icefloe.ledger.base import Event
from icefloe.observe.metrics import metrics_for
from icefloe.observe.tracing import tracing_for
from icefloe.runtime import Runtime
from icefloe.sources.base import Landed, ObjectRef, Source

__all__ = ["Lander"]

log = logging.getLogger("icefloe")

# refs per listing page, and unrouted events per ledger page
PAGE = 1000
# changed objects a reconcile pass holds before landing them (and saving its position): bounds
# its memory on a bucket of millions of new objects, which then start landing after 10,000
BATCH = 10_000
# seconds between saves of the position while the listing finds nothing new
SAVE_EVERY = 1.0
# seconds the landing thread waits before it looks again at objects still settling
SETTLE_POLL = 0.02
# seconds the landing thread waits after the ledger could not be reached
LEDGER_RETRY = 2.0
# objects landed in one ledger transaction (their bytes are hashed before it begins)
LAND_BATCH = 100


class Lander:
    """The `Engine`'s part that finds objects and records them: the reconcile scan, watch
    notices waiting to settle, and the events a landed object becomes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.ledger = runtime.ledger
        self.metrics = metrics_for(runtime.config)
        self.tracing = tracing_for(runtime)
        # (source name, key) -> (source, complete): objects a notice named, landed once they settle
        self._candidates: dict[tuple[str, str], tuple[Source, bool]] = {}
        self._lock = threading.Lock()
        # sources whose reconcile pass stopped at its `budget`: it carries on at the next call
        self.unfinished: set[str] = set()
        # source -> (where its unfinished pass began, where it stopped)
        self._cut: dict[str, tuple[str | None, str | None]] = {}
        self._landing = threading.RLock()  # one landing at a time: the thread's, reconcile's
        self._noticed = threading.Event()  # a notice came: the landing thread looks at once
        # hears the new events of every landing (the engine's batch window, its idle wait)
        self.on_landed: Callable[[list[Event]], None] | None = None
        self._thread: tuple[threading.Thread, threading.Event] | None = None

    # -- the landing thread ------------------------------------------------------------------------
    @property
    def threaded(self) -> bool:
        """Notices land on the landing thread (a running worker), not in the engine's step."""
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            stop = threading.Event()
            thread = threading.Thread(target=self._land_forever, args=(stop,), name="icefloe-landing", daemon=True)
            self._thread = (thread, stop)
            thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            thread, stop = self._thread
            stop.set()
            self._noticed.set()
            thread.join(timeout=30)
            self._thread = None

    def _land_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                settling = bool(self._candidates)
            # nothing noticed: sleep until a notice (or the stop) comes; objects still
            # settling are looked at again every SETTLE_POLL, as the engine's step did
            self._noticed.wait(SETTLE_POLL if settling else None)
            self._noticed.clear()
            if stop.is_set():
                return
            try:
                self._land_candidates()
            except LedgerUnavailableError as exc:  # the notices stay, landed once it answers
                log.warning("%s; landing again in %.0f s", exc, LEDGER_RETRY)
                stop.wait(LEDGER_RETRY)
            except Exception:  # keep landing; reconcile finds what a notice missed
                log.exception("landing noticed objects failed; retrying")
                stop.wait(LEDGER_RETRY)

    def land(self, source: Source, target: ObjectRef | str, *, traceparent: str | None = None) -> list[Event]:
        """Land one object (a ref, or a key to head) unless this very version landed before.
        `traceparent`: the caller's trace (observe.tracing.context_from_traceparent), joined."""
        ref = source.head(target) if isinstance(target, str) else target
        if ref is None:
            return []
        landed = self._described(source, ref)
        return [] if landed is None else self.land_object(landed, traceparent=traceparent)

    def _described(self, source: Source, ref: ObjectRef) -> Landed | None:
        """The object as it lands (its bytes hashed), or None: this very version landed before."""
        if self.ledger.object_stamp(source.name, ref.key) == ref.version:
            return None
        return source.describe(ref)

    def land_object(self, landed: Landed, *, traceparent: str | None = None) -> list[Event]:
        """Record a complete object and route it; returns the events that are new. Its events
        keep the trace of this landing (a child of `traceparent`, the caller's, if given)."""
        return self.land_objects([landed], traceparent=traceparent)[0]

    def land_objects(self, batch: list[Landed], *, traceparent: str | None = None) -> list[list[Event]]:
        """`land_object` for each, in order, in one ledger transaction (one WAL flush for all):
        every object's events and stamp, or none of them. Returns each one's new events."""
        spans = []
        found: list[list[Event]] = []
        try:
            with self.ledger.transaction():
                for landed in batch:
                    pipelines = self.runtime.router.match(landed.source, landed.key)
                    attempts = {p: self.config.pipelines[p].retry.max_attempts for p in pipelines}
                    parent, span = self.tracing.start_land(traceparent, source=landed.source, key=landed.key, size=landed.size)
                    spans.append(span)
                    found.append(self.ledger.land(
                        source=landed.source, key=landed.key, uri=landed.uri, content_hash=landed.content_hash,
                        size=landed.size, pipelines=pipelines, max_attempts=attempts, stamp=landed.stamp, traceparent=parent,
                    ))  # fmt: skip
                    if landed.stamp:  # with its events: no landing without the stamp a reconcile checks
                        self.ledger.set_object_stamp(landed.source, landed.key, landed.stamp)
        except Exception as exc:
            for span in spans:
                self.tracing.end(span, exc)
            self.metrics.error("land", exc)
            raise
        for landed, span, events in zip(batch, spans, found, strict=True):
            self.tracing.end(span)
            self.metrics.landed(landed.source, events)
        fresh = [ev for events in found for ev in events]
        if fresh and self.on_landed is not None:
            self.on_landed(fresh)
        return found

    def reroute(self, names: Iterable[str] | None = None) -> int:
        """Objects recorded `unrouted` that the config now routes (a route was added or fixed)
        land again, for their pipelines, and their `unrouted` record goes. Runs with reconcile,
        a ledger page at a time."""
        wanted = set(self.runtime.sources if names is None else names)
        with self._landing:
            return self._reroute(wanted)

    def _reroute(self, wanted: set[str]) -> int:
        count, after = 0, None
        while True:
            page = self.ledger.page(states=["unrouted"], after=after, limit=PAGE)
            for ev in page:
                source = self.runtime.sources.get(ev.source)
                if source is None or ev.source not in wanted or not self.runtime.router.match(ev.source, ev.key):
                    continue
                try:
                    ref = source.head(ev.key)
                    if ref is None:
                        raise FileNotFoundError(ev.object_ref)
                    landed = source.describe(ref)
                except (OSError, IcefloeError) as exc:  # gone or unreadable: it stays unrouted, shown
                    log.warning("could not route %s again: %s", ev.object_ref, exc)
                    continue
                self.ledger.requeue_unrouted([(ev.source, ev.key)])
                count += len(self.land_object(landed))
            if len(page) < PAGE:
                return count
            after = page[-1].seq

    def reconcile(self, names: Iterable[str] | None = None, *, budget: float | None = None) -> int:
        """Find objects that landed while nothing watched (at start, then on each source's
        `reconcile` schedule), oldest first: what piled up must land in the order it was
        written, or an older file could win an upsert. A pass is paged and goes round from the
        position the ledger keeps (engine/listing.py); changes land `BATCH` at a time (oldest
        first within a batch), and the position is saved after each batch has landed.

        `budget`: seconds of listing per source, after which its pass stops where it is and
        `unfinished` names it (a running worker carries on between its steps instead of
        stalling them for a whole listing of a big bucket)."""
        only = None if names is None else set(names)
        chosen = [s for n, s in self.runtime.sources.items() if only is None or n in only]
        count = self.reroute([s.name for s in chosen])
        changed: list[tuple[Source, ObjectRef]] = []
        # source -> (position saved, position reached by the pages whose changes are in `changed`)
        positions: dict[str, list[str | None]] = {}
        saved_at = time.monotonic()

        def land_and_save() -> int:
            nonlocal saved_at
            landed = self._land_found(changed)
            changed.clear()
            for name, (stored, reached) in positions.items():
                if stored != reached:
                    self.ledger.set_listing_position(name, reached)
                    positions[name][0] = reached
            saved_at = time.monotonic()
            return landed

        for source in chosen:
            began = time.monotonic()
            self.unfinished.discard(source.name)
            try:
                start = self.ledger.listing_position(source.name)
                # a pass cut short goes on from where it stopped, round to where it began; a new
                # one (or a restart's) goes round from the saved position
                origin, after = self._cut.pop(source.name, (start, start))
                positions[source.name] = [start, after]
                for page in ring(source, origin, after, PAGE):
                    # one ledger query per page, not one per object
                    stamps = self.ledger.object_stamps(source.name, [r.key for r in page.refs]) if page.refs else {}
                    changed += [(source, r) for r in page.refs if stamps.get(r.key) != r.version]
                    positions[source.name][1] = page.position
                    late = budget is not None and time.monotonic() - began >= budget and not page.done
                    if len(changed) >= BATCH or late or (not changed and time.monotonic() - saved_at >= SAVE_EVERY):
                        count += land_and_save()
                    if late:
                        self.unfinished.add(source.name)
                        self._cut[source.name] = (origin, page.position)
                        break
            except (OSError, IcefloeError) as exc:  # the source is unreachable: try again next time
                log.warning("could not list source %r: %s", source.name, exc)
        return count + land_and_save()

    def _land_found(self, changed: list[tuple[Source, ObjectRef]], *, settled: bool = False) -> int:
        with self._landing:
            return self._land_sorted(changed, settled=settled)

    def _land_sorted(self, changed: list[tuple[Source, ObjectRef]], *, settled: bool = False) -> int:
        """Hash and land the objects, oldest first, `LAND_BATCH` to a ledger transaction.
        `settled`: their stability was checked already (a watch notice may say it was closed)."""
        count = 0
        ready: list[Landed] = []
        for source, ref in _oldest_first(changed):
            if len(ready) >= LAND_BATCH:
                count += self._land_batch(ready)
                ready = []
            try:
                if not settled and not source.is_stable(ref):
                    self.notice(source, ref.key, False)
                    continue
                landed = self._described(source, ref)
            except ObjectChangedError:
                self.notice(source, ref.key, False)  # still being written: look again once it settles
                continue
            except (OSError, IcefloeError) as exc:  # vanished, unreadable, or a symlink out of the root
                log.warning("could not land %s:%s: %s", source.name, ref.key, exc)
                continue
            if landed is not None:
                ready.append(landed)
        return count + self._land_batch(ready)

    def _land_batch(self, batch: list[Landed]) -> int:
        """Land hashed objects in one transaction, in order; a batch the ledger refuses is landed
        again one object at a time, so one object's failure is its own."""
        if not batch:
            return 0
        try:
            return sum(len(events) for events in self.land_objects(batch))
        except (OSError, IcefloeError) as exc:
            if len(batch) == 1:
                log.warning("could not land %s:%s: %s", batch[0].source, batch[0].key, exc)
                return 0
        count = 0
        for landed in batch:
            try:
                count += len(self.land_object(landed))
            except (OSError, IcefloeError) as exc:
                log.warning("could not land %s:%s: %s", landed.source, landed.key, exc)
        return count

    def notice(self, source: Source, key: str, complete: bool) -> None:
        # the latest notice wins: a file written again after a close is incomplete once more
        with self._lock:
            self._candidates[(source.name, key)] = (source, complete)
        self._noticed.set()

    def _noticer(self, source: Source) -> Callable[[str, bool], None]:
        return lambda key, complete: self.notice(source, key, complete)

    def _land_candidates(self) -> None:
        with self._landing:
            self._land_noticed()

    def _land_noticed(self) -> None:
        # the heads run outside `_lock`: a notice (a feed's thread, the NATS session) never waits
        # for them; one that comes meanwhile replaces its entry, which then stays for another look
        with self._lock:
            if not self._candidates:
                return
            noticed = dict(self._candidates)
        ready: list[tuple[Source, ObjectRef, bool]] = []
        settling: list[ObjectRef] = []
        gone: list[tuple[str, str]] = []
        for (name, key), (source, closed) in noticed.items():
            try:
                ref = source.head(key)
            except (OSError, IcefloeError) as exc:  # a link out of the root, say: dropped, shown
                log.warning("could not land %s:%s: %s", name, key, exc)
                ref = None
            if ref is None:
                # renamed or deleted before it settled (write-then-rename): nothing to wait
                # for, and `run --once` must not wait for it forever
                gone.append((name, key))
            elif source.is_stable(ref, closed):
                ready.append((source, ref, closed))
            else:
                settling.append(ref)
        # landing order is the order files were written: a finished file waits for an older
        # one still settling (found by the scan at start, or seen only by modify notices), or
        # a newer file could land first and lose an upsert to it. The wait ends once the
        # older file settles, or it is written again (then it is the newer one).
        if settling:
            oldest = min(_when(r) for r in settling)
            ready = [(s, r, c) for s, r, c in ready if _when(r) < oldest]
        with self._lock:
            for done in [*((s.name, r.key) for s, r, _ in ready), *gone]:
                if self._candidates.get(done) is noticed[done]:
                    del self._candidates[done]
        ordered = sorted(ready, key=lambda item: _when(item[1]))
        for at, (source, ref, closed) in enumerate(ordered):
            try:
                self.land(source, ref)
            except ObjectChangedError:
                self.notice(source, ref.key, False)  # still being written: look again once it settles
            except LedgerUnavailableError:
                # not the object's fault: it and the rest wait for the ledger, noticed again
                with self._lock:
                    for later, again, was_closed in ordered[at:]:
                        self._candidates.setdefault((later.name, again.key), (later, was_closed))
                raise
            except (OSError, IcefloeError) as exc:
                log.warning("could not land %s:%s: %s", source.name, ref.key, exc)


def _when(ref: ObjectRef) -> tuple[float, str]:
    """Modification time, ties by key."""
    return ref.modified_at, ref.key


def _oldest_first(found: Iterable[tuple[Source, ObjectRef]]) -> list[tuple[Source, ObjectRef]]:
    return sorted(found, key=lambda item: _when(item[1]))

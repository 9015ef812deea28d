"""Processing: one leased event's pipeline run, from its bytes to rows in its table's buffer.

Before it reads, an event is checked against what may have made it moot: a crash after its
commit (the table's history has it), a newer version of its object (superseded), the same bytes
loaded from another object (`dedupe.content`). `EventProcessing` is the `Engine`'s part for it; it
reads the engine's runtime, committer and buffers (declared below, set by `Engine.__init__`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from icefloe.engine.batching import _Buffer
from icefloe.engine.committing import Committer
from icefloe.engine.fetching import Fetcher
from icefloe.errors import IcefloeError, LeaseLostError, ObjectChangedError
from icefloe.lake.writer import TableWriter, committed_event_ids
from icefloe.ledger.base import Event, Ledger
from icefloe.observe.logs import bind
from icefloe.observe.metrics import NullMetrics
from icefloe.observe.tracing import Tracing, event_traceparent, trace_id_of
from icefloe.pipelines.runner import PipelineRunner
from icefloe.runtime import Clock, Runtime
from icefloe.sources.base import Source

if TYPE_CHECKING:
    from icefloe.config import ProjectConfig

__all__ = ["EventProcessing"]

log = logging.getLogger("icefloe")


class EventProcessing:
    runtime: Runtime
    config: ProjectConfig
    ledger: Ledger
    clock: Clock
    runners: dict[str, PipelineRunner]
    metrics: NullMetrics
    tracing: Tracing
    fetcher: Fetcher
    committer: Committer
    table_of: dict[str, str]
    buffers: dict[str, _Buffer]
    # (event, bytes of its file read, records so far), for a progress bar on long files
    progress: Callable[[Event, int, int], None] | None
    _in_flight: set[str]  # the event _process is working on (it can take minutes)

    if TYPE_CHECKING:  # the engine's own, which tests may replace on an instance

        def _notify(self, ev: Event, state: str) -> None: ...

        def writer(self, table: str, pipeline: str | None = None) -> TableWriter: ...

        def notice(self, source: Source, key: str, complete: bool) -> None: ...

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
            self.committer.steplog.add([ev.id], name, started, ended, detail)
            self.tracing.span(ev, name, started, ended, **detail)
        now = time.time()
        # the counts survive a crash before the commit is recorded (see _skip_already_committed):
        # the commit writes them first (engine.steplog)
        self.committer.steplog.add([ev.id], "staged", now, now, dict(out.stats))
        committer = self.committer
        with committer._buffers_lock:
            if committer.holds(ev):
                # an older event of its order failed in the commit running beside this round
                # (engine.batching): this one waits for it, as the buffered ones do
                committer._put_back([(ev, out)])
                return
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

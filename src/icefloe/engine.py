"""The worker loop: land objects, lease events, run pipelines, micro-batch and commit per table.

One Engine per process. Events for the same table coalesce into one commit, flushed when the
batch reaches max_rows/max_bytes, waited max_wait, or nothing more is runnable for that table.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from icefloe.config import WriteConfig
from icefloe.errors import DataError, IcefloeError, ObjectChangedError, SchemaError, describe, is_transient
from icefloe.lake.evolve import merged_schema
from icefloe.lake.writer import Staged, TableWriter, committed_event_ids
from icefloe.ledger.base import Event, owner_id
from icefloe.pipelines.runner import META_COLUMNS, EventOutput, PipelineRunner
from icefloe.sources.base import Landed, Source

if TYPE_CHECKING:
    from icefloe.project import Project

__all__ = ["Engine"]

log = logging.getLogger("icefloe")


@dataclass
class _Buffer:
    items: list[tuple[Event, EventOutput]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    first_at: float = 0.0


def _local_owner_alive(owner: str) -> bool:
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


class Engine:
    def __init__(self, project: Project, *, lease_limit: int = 16) -> None:
        self.project = project
        self.config = project.config
        self.ledger = project.ledger
        self.owner = owner_id()
        self.lease_limit = lease_limit
        self.runners = {name: PipelineRunner(name, cfg, project.root) for name, cfg in self.config.pipelines.items()}
        self.writers: dict[str, TableWriter] = {}
        self.table_of = {name: cfg.write.table for name, cfg in self.config.pipelines.items()}
        # child tables (format xml `children`) are written in their parent's mode, before the parent
        self.child_writes = {
            table: WriteConfig(table=table, mode=cfg.write.mode)
            for cfg in self.config.pipelines.values()
            for table in cfg.write.children.values()
        }
        # where the newest landed object must win, events commit in landing order
        self.ordered = [name for name, cfg in self.config.pipelines.items() if cfg.write.mode != "append"]
        self._held_back: set[str] = set()
        self.buffers: dict[str, _Buffer] = {}
        self._candidates: dict[Path, tuple[Source, bool]] = {}
        self._lock = threading.Lock()
        self.on_event: Callable[[Event, str], None] | None = None
        # (bytes read, records) of the file being read, for a progress bar on long files
        self.progress: Callable[[int, int], None] | None = None

    # -- landing --------------------------------------------------------------------------------
    def _unchanged(self, source: Source, path: Path) -> bool:
        """Landed before with this very stamp: no need to hash it again."""
        return self.ledger.object_stamp(source.name, source.key_for(path)) == source.stamp(path)

    def land(self, source: Source, path: Path) -> list[Event]:
        if self._unchanged(source, path):
            return []
        return self.land_object(source.describe(path))

    def land_object(self, landed: Landed) -> list[Event]:
        """Record a complete object and route it; returns the events that are new."""
        pipelines = self.project.router.match(landed.source, landed.key)
        attempts = {p: self.config.pipelines[p].retry.max_attempts for p in pipelines}
        events = self.ledger.land(
            source=landed.source, key=landed.key, uri=landed.uri, content_hash=landed.content_hash,
            size=landed.size, pipelines=pipelines, max_attempts=attempts, stamp=landed.stamp,
        )  # fmt: skip
        if landed.stamp:
            self.ledger.set_object_stamp(landed.source, landed.key, landed.stamp)
        return events

    def reconcile(self) -> int:
        """Find objects that landed while nothing ran (the scan at start)."""
        count = 0
        for source in self.project.sources.values():
            for path in source.scan():
                try:
                    if self._unchanged(source, path):
                        continue  # landed before (or just now by `ingest`)
                    if not source.is_stable(path):
                        self.notice(source, path, False)
                        continue
                    count += len(self.land_object(source.describe(path)))
                except ObjectChangedError:
                    self.notice(source, path, False)  # still being written: look again once it settles
                except (OSError, IcefloeError) as exc:  # vanished, unreadable, or a symlink out of the root
                    log.warning("could not land %s: %s", path, exc)
        return count

    def notice(self, source: Source, path: Path, complete: bool) -> None:
        with self._lock:
            old = self._candidates.get(path)
            self._candidates[path] = (source, complete or bool(old and old[1]))

    def _noticer(self, source: Source) -> Callable[[Path, bool], None]:
        return lambda path, complete: self.notice(source, path, complete)

    def _land_candidates(self) -> None:
        with self._lock:
            ready = [(p, s, c) for p, (s, c) in self._candidates.items() if s.is_stable(p, c)]
            for path, _, _ in ready:
                del self._candidates[path]
        for path, source, _ in ready:
            try:
                if path.is_file():
                    self.land(source, path)
            except ObjectChangedError:
                self.notice(source, path, False)  # still being written: look again once it settles
            except (OSError, IcefloeError) as exc:
                log.warning("could not land %s: %s", path, exc)

    # -- processing -----------------------------------------------------------------------------
    def writer(self, table: str) -> TableWriter:
        if table not in self.writers:
            if table in self.child_writes:
                config = self.child_writes[table]
            else:
                config = self.config.pipelines[next(p for p, t in self.table_of.items() if t == table)].write
            self.writers[table] = TableWriter(self.project.catalog, config)
        return self.writers[table]

    def _target_table(self, pipeline: str, target: str | None) -> str:
        return self.config.pipelines[pipeline].write.children[target] if target else self.table_of[pipeline]

    def _discard(self, pipeline: str, out: EventOutput) -> None:
        """Delete the files an event wrote ahead of a commit that will not happen."""
        self.writer(self.table_of[pipeline]).discard(out.spilled)
        for child, files in out.children_spilled.items():
            self.writer(self._target_table(pipeline, child)).discard(files)

    def step(self) -> bool:
        """One round: land, lease, process, flush what is due. True if anything happened."""
        self._land_candidates()
        events = self.ledger.lease(self.owner, limit=self.lease_limit, ttl=self.config.lease, ordered=self.ordered)
        self._skip_already_committed(events)
        self._held_back = set()
        for ev in events:
            if ev.state == "committed":
                continue
            if ev.pipeline in self._held_back:
                self.ledger.release([ev.id], self.owner)  # an older event of its pipeline must go first
                continue
            self._process(ev)
        self._renew_buffered()
        flushed = self._flush(force=not events)
        return bool(events) or flushed

    def _skip_already_committed(self, events: list[Event]) -> None:
        """After a crash between commit and ledger update the table history has the answer."""
        retried = [ev for ev in events if ev.attempts > 1 and ev.pipeline]
        tables = {self.table_of[ev.pipeline] for ev in retried if ev.pipeline}
        history = {}
        for table in tables:
            loaded = self.writer(table).load()
            history[table] = committed_event_ids(loaded) if loaded is not None else {}
        for ev in retried:
            table = self.table_of[ev.pipeline or ""]
            if ev.id in history[table]:
                staged = [s.detail for s in self.ledger.steps(ev.id) if s.step == "staged"]
                stats = {ev.id: staged[-1]} if staged else {}
                self.ledger.mark_committed([ev.id], table=table, snapshot_id=history[table][ev.id], stats=stats)
                ev.state = "committed"
                log.info("event %s was already in %s (snapshot %s)", ev.id, table, history[table][ev.id])

    def _process(self, ev: Event) -> None:
        assert ev.pipeline is not None
        source = self.project.sources.get(ev.source)
        try:
            if source is None:
                raise IcefloeError(f"source {ev.source!r} is no longer configured")
            if ev.pipeline not in self.runners:
                raise IcefloeError(f"pipeline {ev.pipeline!r} is no longer configured")
            runner = self.runners[ev.pipeline]
            writer = self.writer(self.table_of[ev.pipeline])
            path = source.open_path(ev.key)
            if self._superseded(ev, source, path):
                return
            # only modes that append whole files can write rows ahead of the commit
            can_spill = writer.config.mode in ("append", "replace_source") and runner.config.dedupe is None
            pipeline = ev.pipeline
            spill = (lambda target: self.writer(self._target_table(pipeline, target)).stream()) if can_spill else None
            out = runner.run(ev, path, spill, runner.config.batch.spill_bytes, progress=self.progress)
            if self._superseded(ev, source, path):  # rewritten while we read it
                self._discard(ev.pipeline, out)
                return
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the worker
            self._fail([ev], exc)
            return
        for name, started, ended, detail in out.steps:
            self.ledger.record_step([ev.id], name, started, ended, **detail)
        now = time.time()
        # the counts survive a crash before the commit is recorded (see _skip_already_committed)
        self.ledger.record_step([ev.id], "staged", now, now, **out.stats)
        buf = self.buffers.setdefault(self.table_of[ev.pipeline], _Buffer())
        if not buf.items:
            buf.first_at = time.time()
        buf.items.append((ev, out))
        buf.rows += out.data.num_rows
        buf.bytes += out.data.nbytes

    def _superseded(self, ev: Event, source: Source, path: Path) -> bool:
        """The bytes this event stands for were replaced: the new bytes are their own event."""
        try:
            current = source.stamp(path)
        except FileNotFoundError:
            raise DataError("the object was deleted before it could be processed", file=ev.object_ref) from None
        if not ev.stamp or current == ev.stamp:
            return False
        try:
            same = source.describe(path).content_hash == ev.content_hash  # landed again, same bytes?
        except ObjectChangedError:
            same = False
        if same:
            return False
        self.ledger.supersede(ev.id, f"{ev.object_ref} was replaced before it was processed; the new version is a new event")
        self.notice(source, path, False)
        self._notify(ev, "discarded")
        return True

    def _renew_buffered(self) -> None:
        held = [ev for buf in self.buffers.values() for ev, _ in buf.items]
        soon = time.time() + self.config.lease / 2
        due = [ev.id for ev in held if (ev.lease_expires_at or 0) < soon]
        if due:
            self.ledger.renew(due, self.owner, self.config.lease)
            for ev in held:
                ev.lease_expires_at = time.time() + self.config.lease

    def _due(self, table: str, buf: _Buffer, force: bool) -> bool:
        if not buf.items:
            return False
        batch = self.config.pipelines[buf.items[0][0].pipeline or ""].batch
        if force or buf.rows >= batch.max_rows or buf.bytes >= batch.max_bytes:
            return True
        if time.time() - buf.first_at >= batch.max_wait:
            return True
        pipelines = [p for p, t in self.table_of.items() if t == table]
        # nothing more is coming for this table right now: waiting would only add latency
        return self.ledger.pending_count(pipelines) <= len(buf.items)

    def _flush(self, force: bool) -> bool:
        flushed = False
        for table, buf in list(self.buffers.items()):
            if self._due(table, buf, force):
                self.buffers[table] = _Buffer()
                self._commit(table, buf.items)
                flushed = True
        return flushed

    def _commit(self, table: str, items: list[tuple[Event, EventOutput]]) -> None:
        writer = self.writer(table)
        started = time.time()
        accepted: list[tuple[Event, EventOutput]] = []
        try:
            current = writer.load()
            schema = current.schema().as_arrow() if current is not None else None
            for ev, out in items:
                try:
                    schema = merged_schema(schema, out.data.schema, table)
                except SchemaError as exc:
                    self._fail([ev], exc)
                    continue
                self._write_quarantine(ev, out)
                accepted.append((ev, out))
            if not accepted:
                return
            self.ledger.renew([ev.id for ev, _ in accepted], self.owner, self.config.lease)
            # children first: once the parent holds an event, its child rows are known to be in too
            self._commit_children(accepted)
            staged = [
                Staged(ev.id, out.source_ref, out.data, ev.landed_at, out.spilled)
                for ev, out in accepted
            ]
            snapshot_id, newly = writer.commit(staged, table=current)
            ids = [ev.id for ev, _ in accepted]
            snapshots: dict[str, int | None] = dict.fromkeys(newly, snapshot_id)
            if len(newly) < len(ids):  # another worker committed some meanwhile: theirs is the snapshot
                loaded = writer.load()
                history = committed_event_ids(loaded) if loaded is not None else {}
                snapshots.update({i: history.get(i) for i in ids if i not in snapshots})
        except Exception as exc:  # noqa: BLE001
            self._fail([ev for ev, _ in accepted], exc)
            return
        ended = time.time()
        if newly:
            self.ledger.record_step(newly, "commit", started, ended, table=table, snapshot_id=snapshot_id, events=len(newly))
        stats = {ev.id: out.stats for ev, out in accepted}
        for sid in dict.fromkeys(snapshots.values()):
            self.ledger.mark_committed([i for i in ids if snapshots[i] == sid], table=table, snapshot_id=sid, stats=stats)
        for ev, _ in accepted:
            self._notify(ev, "committed")
        rows = sum(out.stats["rows_out"] for _, out in accepted)
        log.info("committed %d event(s), %d row(s) to %s in %.0f ms (snapshot %s)", len(ids), rows, table, (ended - started) * 1000, snapshot_id)

    def _commit_children(self, accepted: list[tuple[Event, EventOutput]]) -> None:
        """Each child table gets one commit carrying the same event ids as the parent's.

        Iceberg has no multi-table commit, so a crash can leave a child ahead of its parent for a
        moment; the retried event finds its id in the child's history and commits only the parent.
        """
        children: dict[str, list[Staged]] = {}
        for ev, out in accepted:
            assert ev.pipeline is not None
            for child, table in self.config.pipelines[ev.pipeline].write.children.items():
                data = out.children.get(child)
                if data is None:  # no rows for this child: still recorded, and replaces old rows
                    data = out.data.select([c for c in META_COLUMNS if c in out.data.column_names]).slice(0, 0)
                files = out.children_spilled.get(child, [])
                children.setdefault(table, []).append(Staged(ev.id, out.source_ref, data, ev.landed_at, files))
        for table, staged in children.items():
            writer = self.writer(table)
            if all(s.data.num_columns <= len(META_COLUMNS) and not s.files for s in staged) and writer.load() is None:
                continue  # nothing to write and no table whose old rows could need replacing
            staged.sort(key=lambda s: s.data.num_columns, reverse=True)  # a table is created from real columns
            writer.commit(staged)

    def _write_quarantine(self, ev: Event, out: EventOutput) -> None:
        if out.quarantine is None or out.quarantine.num_rows == 0:
            return
        folder = self.project.quarantine_dir / (ev.pipeline or "_")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{ev.id}.parquet"
        partial = target.with_suffix(".parquet.part")
        pq.write_table(out.quarantine, partial)
        os.replace(partial, target)

    def _fail(self, events: list[Event], exc: BaseException) -> None:
        transient = is_transient(exc)
        text = describe(exc)
        for ev in events:
            retry = self.config.pipelines[ev.pipeline].retry if ev.pipeline in self.config.pipelines else None
            state = self.ledger.mark_failed(
                ev.id, error=text, kind=type(exc).__name__, transient=transient,
                backoff=retry.backoff if retry else 1.0, max_backoff=retry.max_backoff if retry else 60.0,
            )  # fmt: skip
            log.warning("event %s (%s) %s: %s", ev.id, ev.object_ref, state, text)
            self._notify(ev, state)
            if state == "retrying" and ev.pipeline in self.ordered:
                self._hold_back(ev)

    def _hold_back(self, failed: Event) -> None:
        """An ordered pipeline's event will retry: newer ones of that pipeline wait for it."""
        assert failed.pipeline is not None
        self._held_back.add(failed.pipeline)
        buf = self.buffers.get(self.table_of[failed.pipeline])
        if buf is None:
            return
        newer = [(ev, out) for ev, out in buf.items if ev.pipeline == failed.pipeline and ev.landed_at >= failed.landed_at]
        if newer:
            buf.items = [item for item in buf.items if item not in newer]
            buf.rows -= sum(out.data.num_rows for _, out in newer)
            buf.bytes -= sum(out.data.nbytes for _, out in newer)
            self.ledger.release([ev.id for ev, _ in newer], self.owner)
            for _, out in newer:
                self._discard(failed.pipeline, out)

    def _notify(self, ev: Event, state: str) -> None:
        if self.on_event is not None:
            self.on_event(ev, state)

    # -- loops ----------------------------------------------------------------------------------
    def start(self) -> None:
        released = self.ledger.release_dead_owners(_local_owner_alive)
        if released:
            log.info("took back work from %d dead local worker(s)", released)

    def drain(self, stop: threading.Event | None = None) -> None:
        """Process until nothing is pending (retries included), then return: `run --once`."""
        self.start()
        self.reconcile()
        while not (stop and stop.is_set()):
            if self.step():
                continue
            idle = not self._candidates and not any(b.items for b in self.buffers.values())
            if idle and self.ledger.pending_count() == 0:
                break
            time.sleep(0.05)  # only retries with a backoff remain
        self._flush(force=True)

    def serve(self, stop: threading.Event, poll: float = 0.02) -> None:
        """Watch sources and process until `stop` is set: `run`."""
        self.start()
        stoppers = [source.watch(self._noticer(source)) for source in self.project.sources.values()]
        try:
            self.reconcile()
            while not stop.is_set():
                try:
                    busy = self.step()
                except Exception:  # noqa: BLE001 - keep serving; the ledger keeps the work
                    log.exception("worker step failed; retrying")
                    busy = False
                if not busy:
                    stop.wait(poll)
            self._flush(force=True)
        finally:
            for stopper in stoppers:
                stopper()


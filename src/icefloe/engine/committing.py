"""Committing: per-table commits (children before parents), schema checks, the fenced ledger
updates after them and the maintenance that commits make due. The batches are engine.batching's,
the failures engine.failures'."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.table import Table

from icefloe.config import WriteConfig
from icefloe.engine.batching import COMMIT_STRETCH, MAX_STRETCH, Batching, _Buffer
from icefloe.engine.failures import CommitFailures, held_key
from icefloe.engine.shared import in_runs, order_groups, pipeline_write, table_write
from icefloe.errors import LeaseLostError, LedgerUnavailableError, SchemaError, describe
from icefloe.engine.steplog import StepLog
from icefloe.lake.evolve import merged_schema
from icefloe.lake.writer import Staged, TableWriter, committed_event_ids
from icefloe.ledger.base import Event
from icefloe.observe.metrics import metrics_for
from icefloe.observe.tracing import tracing_for
from icefloe.pipelines.runner import META_COLUMNS, EventOutput
from icefloe.runtime import Runtime

if TYPE_CHECKING:
    from icefloe.engine.maintenance import Maintenance
    from icefloe.upkeep import Upkeep  # the lake's maintenance code loads on first use

__all__ = ["COMMIT_STRETCH", "MAX_STRETCH", "Committer", "held_key"]

log = logging.getLogger("icefloe")


class Committer(Batching, CommitFailures):
    """The `Engine`'s part that takes an event's rows after its pipeline ran: per-table buffers,
    commits, failures, and the maintenance commits make due.

    `notify(event, state)` hears each event this worker settles. Maintenance runs on a thread of
    its own (`engine.maintenance`), made on first use."""

    def __init__(
        self, runtime: Runtime, owner: str, *, notify: Callable[[Event, str], None]) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.ledger = runtime.ledger
        self.clock = runtime.clock
        self.owner = owner
        self._notify = notify
        self.metrics = metrics_for(runtime.config)
        self.tracing = tracing_for(runtime)
        self._maintenance: Maintenance | None = None
        self.writers: dict[str, TableWriter] = {}
        self.table_of = {name: cfg.write.table for name, cfg in self.config.pipelines.items()}
        # child tables (format xml `children`) are written in their parent's mode, before the parent
        self.child_writes = {
            table: WriteConfig(table=table, mode=cfg.write.mode)
            for cfg in self.config.pipelines.values()
            for table in cfg.write.children.values()
        }
        # where the newest landed object must win, events commit in landing order; an append
        # pipeline only needs one object's versions in order (a new version replaces the old rows)
        self.ordered = [name for name, cfg in self.config.pipelines.items() if cfg.write.mode != "append"]
        # pipelines sharing a table with an ordered one follow its landing order too
        self.ordered, self.order_groups = order_groups(self.config, self.ordered)
        self.pipeline_writers: dict[str, TableWriter] = {}
        self.ordered_by_key = [name for name, cfg in self.config.pipelines.items() if cfg.write.mode == "append"]
        # pipelines (and append objects) whose older event will retry: the engine's lease loop
        # hands their newer events back; cleared each round, never replaced (the engine reads it)
        self._held_back: set[str] = set()
        self._held_behind: set[str] = set()
        self.buffers: dict[str, _Buffer] = {}
        self._maintain_due: set[str] = set()
        self._commit_seconds: dict[str, float] = {}  # how long each table's last commit took
        # pipeline -> events landed since the round's lease (the landing thread lands during it)
        self._arrived: dict[str, int] = {}
        self._arrived_lock = threading.Lock()
        self.background = False  # `Engine.serve`: batches commit on a thread (engine.batching)
        self._commit_thread: threading.Thread | None = None
        self._commit_running = False
        self._buffers_lock = threading.RLock()
        self.on_committed: Callable[[], None] | None = None
        self.committing: dict[str, int] = {}
        self.steplog = StepLog(self.ledger)  # the engine's step records, written with its next transaction

    def writer(self, table: str, pipeline: str | None = None) -> TableWriter:
        """The table's writer; with `pipeline`, the one that commits in that pipeline's own mode."""
        if pipeline is not None and self.table_of.get(pipeline) == table:
            return self._pipeline_writer(pipeline)
        if table not in self.writers:
            with self._buffers_lock:  # one writer per table, also with a commit on its thread
                if table not in self.writers:
                    config = self.child_writes[table] if table in self.child_writes else table_write(self.config, table)
                    self.writers[table] = TableWriter(self.runtime.catalog, config)
        return self.writers[table]

    def _pipeline_writer(self, pipeline: str) -> TableWriter:
        if pipeline not in self.pipeline_writers:
            with self._buffers_lock:
                if pipeline not in self.pipeline_writers:
                    table, config = self.table_of[pipeline], pipeline_write(self.config, pipeline)
                    shared = self.writer(table)
                    same = shared.config == config
                    self.pipeline_writers[pipeline] = shared if same else TableWriter(self.runtime.catalog, config)
        return self.pipeline_writers[pipeline]

    def _order_group(self, pipeline: str) -> set[str]:
        group = self.order_groups.get(pipeline)
        return {p for p, g in self.order_groups.items() if g == group} if group is not None else {pipeline}

    def _target_table(self, pipeline: str, target: str | None) -> str:
        return self.config.pipelines[pipeline].write.children[target] if target else self.table_of[pipeline]

    def _discard(self, pipeline: str, out: EventOutput) -> None:
        """Delete the files an event wrote ahead of a commit that will not happen."""
        try:
            self.writer(self.table_of[pipeline]).discard(out.spilled)
            for child, files in out.children_spilled.items():
                self.writer(self._target_table(pipeline, child)).discard(files)
        except Exception as exc:  # noqa: BLE001 - the catalog is down; the orphan sweep removes them later
            log.warning("could not delete files written ahead for pipeline %s: %s", pipeline, describe(exc))

    @property
    def maintenance(self) -> Maintenance:
        """The worker's maintenance thread, made on the first table a commit makes due."""
        if self._maintenance is None:
            from icefloe.engine.maintenance import Maintenance

            with self._buffers_lock:  # made once, also when a commit on its thread asks first
                if self._maintenance is None:
                    self._maintenance = Maintenance(self.runtime, self.owner)
        return self._maintenance

    @property
    def upkeep(self) -> Upkeep:
        return self.maintenance.upkeep

    def _maintain(self) -> None:
        """Maintenance that commits made due goes to the maintenance thread; no commit waits for it."""
        with self._buffers_lock:
            due, self._maintain_due = self._maintain_due, set()
        if due:
            self.maintenance.submit(sorted(due))

    def _counted(self, table: str) -> None:
        if self.config.maintenance.enabled_for(table) and self.upkeep.maintainer.after_commit(table, self.writer(table).last_table):
            with self._buffers_lock:
                self._maintain_due.add(table)

    def _commit(self, table: str, items: list[tuple[Event, EventOutput]]) -> None:
        writer = self.writer(table)
        accepted: list[tuple[Event, EventOutput]] = []
        refused: set[str] = set()  # failed on their own (schema) inside the loop
        try:
            current = writer.load()
            # each table this batch touches is loaded once: for the schema checks and its commit
            tables: dict[str, Table | None] = {table: current}
            schemas = {table: current.schema().as_arrow() if current is not None else None}
            for ev, out in items:
                # every table this event writes is checked before any is committed: a child
                # table must not take rows of an event its parent table would then refuse
                targets = [(table, out.data)]
                targets += [(self._target_table(ev.pipeline or "", c), d) for c, d in out.children.items()]
                evolution = self.config.pipelines[ev.pipeline or ""].write.schema_evolution
                try:
                    merged = {
                        name: merged_schema(
                            self._schema_of(name, schemas, tables), data.schema, name, evolution=evolution, source=ev.object_ref
                        )
                        for name, data in targets
                    }
                except SchemaError as exc:
                    self._fail([ev], exc)
                    refused.add(ev.id)
                    continue
                schemas.update(merged)
                self._write_quarantine(ev, out)
                accepted.append((ev, out))
            if not accepted:
                return
            lost: list[str] = []
            # fenced: an event whose lease moved on is another worker's now; the step records go
            # first, so the staged counts are in the ledger before the rows are in the table
            with self.steplog.riding():
                try:
                    self.ledger.renew([ev.id for ev, _ in accepted], self.owner, self.config.lease, epochs={ev.id: ev.epoch for ev, _ in accepted})
                except LeaseLostError as moved:
                    lost = moved.ids
            if lost:
                self.metrics.lease_lost(len(lost))
                log.warning("lease lost on %d event(s) (%s); dropping their work", len(lost), ", ".join(lost[:5]))
                for ev, out in [item for item in accepted if item[0].id in lost]:
                    self._discard(ev.pipeline or "", out)
                accepted = [item for item in accepted if item[0].id not in lost]
                if not accepted:
                    return
        except Exception as exc:  # noqa: BLE001
            # every event of the batch not failed already: the load can fail before any is accepted
            self._fail([ev for ev, _ in items if ev.id not in refused], exc)
            return
        # pipelines sharing the table each commit in their own mode, in landing order
        waiting: set[str] = set()  # order groups with an event that will retry: the newer ones wait
        for run in in_runs(accepted, key=lambda ev: self.writer(table, ev.pipeline).config):
            self._put_back([item for item in run if item[0].pipeline in waiting])
            ready = [item for item in run if item[0].pipeline not in waiting]
            if ready:
                waiting |= self._commit_run(table, ready, tables)

    def _commit_run(self, table: str, accepted: list[tuple[Event, EventOutput]], tables: dict[str, Table | None]) -> set[str]:
        """Commit events that share one write config (one pipeline's mode): one snapshot. Returns
        the pipelines whose newer events must wait (those of a failed event that will retry)."""
        writer = self.writer(table, accepted[0][0].pipeline)
        current = tables[table]
        started = time.time()
        try:
            # children first: once the parent holds an event, its child rows are known to be in too
            replaces = self._replaces(accepted)
            self._commit_children(accepted, tables, replaces)
            staged = [
                Staged(ev.id, out.source_ref, out.data, ev.landed_at, out.spilled, replaces_source=ev.id in replaces, seq=ev.seq)
                for ev, out in accepted
            ]
            ids = [ev.id for ev, _ in accepted]
            if current is None and not any(s.data.num_rows or s.files for s in staged):
                snapshot_id, newly = None, ids  # no rows and no table yet: nothing to create or replace
            else:
                snapshot_id, newly = writer.commit(staged, table=current)
            snapshots: dict[str, int | None] = dict.fromkeys(newly, snapshot_id)
            if len(newly) < len(ids):  # another worker committed some meanwhile: theirs is the snapshot
                loaded = writer.load()
                history = committed_event_ids(loaded) if loaded is not None else {}
                snapshots.update({i: history.get(i) for i in ids if i not in snapshots})
        except Exception as exc:  # noqa: BLE001
            events = [ev for ev, _ in accepted]
            failed_at = time.time()
            for ev in events:
                self.tracing.span(ev, "commit", started, failed_at, error=exc, table=table)
            states = self._fail(events, exc)
            retrying = [ev.pipeline for ev, state in zip(events, states, strict=True) if state == "retrying"]
            return {p for name in retrying if name in self.ordered for p in self._order_group(name)}
        ended = time.time()
        self.metrics.commit_seconds(table, ended - started)
        if self.tracing.enabled:
            for ev, _ in accepted:
                self.tracing.span(ev, "commit", started, ended, table=table, snapshot_id=snapshot_id, batch=len(ids))
        if newly:
            # the next run of this batch starts from the table this commit left
            tables[table] = self.writer(table).last_table = writer.last_table
            # written with the committed marks below, in their transaction
            self.steplog.add(newly, "commit", started, ended, {"table": table, "snapshot_id": snapshot_id, "events": len(newly)})
            if snapshot_id is not None:  # None: zero rows for a table not created yet, nothing committed
                self._counted(table)
        stats = {ev.id: out.stats for ev, out in accepted}
        epochs = {ev.id: ev.epoch for ev, _ in accepted}
        gone: set[str] = set()  # leases that moved on: the table holds their rows once, the new owner records it
        try:
            # one transaction for the commit's step records and all its committed marks
            with self.steplog.riding():
                for sid in dict.fromkeys(snapshots.values()):
                    try:
                        self.ledger.mark_committed([i for i in ids if snapshots[i] == sid], table=table, snapshot_id=sid, stats=stats, epochs=epochs)
                    except LeaseLostError as lost:
                        self.metrics.lease_lost(len(lost.ids))
                        log.warning("lease lost on %s; the worker holding them now records their commit", ", ".join(lost.ids[:5]))
                        gone.update(lost.ids)
        except LedgerUnavailableError as down:
            # the rows are in the table: whoever leases them next finds them in its history
            mine = [ev for ev, _ in accepted if ev.id not in gone]
            self._hand_back(mine, f"committed to {table}, but {describe(down)}")
            gone.update(ev.id for ev in mine)
        for ev, _ in accepted:
            if ev.id not in gone:
                self._notify(ev, "committed")
        self._revive_duplicates([ev for ev, _ in accepted])
        fresh = set(newly)
        if fresh:
            by_pipeline: dict[str, list[int]] = {}
            for ev, out in accepted:
                if ev.id in fresh:
                    counts = by_pipeline.setdefault(ev.pipeline or "", [0, 0])
                    counts[0] += out.stats["rows_out"]
                    counts[1] += out.stats.get("rows_quarantined", 0)
            for pipeline, (done, held) in by_pipeline.items():
                self.metrics.rows(pipeline, table, done, held)
            rows = sum(out.stats["rows_out"] for ev, out in accepted if ev.id in fresh)
            log.info("committed %d event(s), %d row(s) to %s in %.0f ms (snapshot %s)", len(fresh), rows, table, (ended - started) * 1000, snapshot_id)
        if len(fresh) < len(ids):  # an earlier commit (another worker's, or before the ledger was lost) holds them
            log.info("%d event(s) already in %s: recorded as committed, no rows written", len(ids) - len(fresh), table)
        return set()

    def _revive_duplicates(self, committed: list[Event]) -> None:
        """A new version that replaced its object's rows in an append or replace_source table took
        its old bytes' rows away: files skipped as their duplicates (`dedupe.content`) load now."""
        for ev in committed:
            cfg = self.config.pipelines.get(ev.pipeline or "")
            if not ev.version or cfg is None or not (cfg.dedupe and cfg.dedupe.content):
                continue
            if cfg.write.mode in ("append", "replace_source"):
                for revived in self.ledger.revive_duplicates(ev, present=self._present):
                    log.info("event %s (%s) landed again: %s no longer holds its bytes", revived.id, revived.object_ref, ev.object_ref)

    def _present(self, source: str, key: str) -> bool:
        found = self.runtime.sources.get(source)
        try:
            return found is not None and found.head(key) is not None
        except Exception:  # noqa: BLE001 - a key that no longer resolves is not there
            return False

    def _replaces(self, accepted: list[tuple[Event, EventOutput]]) -> set[str]:
        """Append events that are a new version of an object whose rows the table already holds
        (or takes in this batch): those replace the object's earlier rows, so no object's rows
        are in an append table twice."""
        ids: set[str] = set()
        seen: set[tuple[str | None, str]] = set()
        keyed = [ev for ev, _ in accepted if ev.pipeline in self.ordered_by_key]
        committed = self.ledger.with_committed_version(keyed) if keyed else set()  # one lookup per batch
        for ev, _ in accepted:
            mine = (ev.pipeline, ev.object_ref)
            if ev.pipeline in self.ordered_by_key and (mine in seen or ev.id in committed):
                ids.add(ev.id)
            seen.add(mine)
        return ids

    def _loaded(self, table: str, loaded: dict[str, Table | None]) -> Table | None:
        if table not in loaded:
            loaded[table] = self.writer(table).load()
        return loaded[table]

    def _schema_of(self, table: str, known: dict[str, pa.Schema | None], loaded: dict[str, Table | None]) -> pa.Schema | None:
        if table not in known:
            found = self._loaded(table, loaded)
            known[table] = found.schema().as_arrow() if found is not None else None
        return known[table]

    def _commit_children(
        self, accepted: list[tuple[Event, EventOutput]], loaded: dict[str, Table | None], replaces: set[str]
    ) -> None:
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
                item = Staged(ev.id, out.source_ref, data, ev.landed_at, files, replaces_source=ev.id in replaces, seq=ev.seq)
                children.setdefault(table, []).append(item)
        for table, staged in children.items():
            known = self._loaded(table, loaded)
            if all(s.data.num_columns <= len(META_COLUMNS) and not s.files for s in staged) and known is None:
                continue  # nothing to write and no table whose old rows could need replacing
            staged.sort(key=lambda s: s.data.num_columns, reverse=True)  # a table is created from real columns
            if self.writer(table).commit(staged, table=known)[1]:
                self._counted(table)

    def _write_quarantine(self, ev: Event, out: EventOutput) -> None:
        if out.quarantine is None or out.quarantine.num_rows == 0:
            return
        self.runtime.quarantine.write(ev.pipeline or "_", ev.id, out.quarantine)

    def _tick(self) -> None:
        if self.config.maintenance.every or any("every" in t for t in self.config.maintenance.tables.values()):
            tables = list(dict.fromkeys([*self.table_of.values(), *self.child_writes]))
            self.maintenance.tick(tables)

"""Run one event through its pipeline: read -> transform -> check -> dedupe -> staged Arrow rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from icefloe.config import PipelineConfig
from icefloe.errors import DataError
from icefloe.ledger.base import Event
from icefloe.pipelines.checks import apply_checks, check_columns, validate_checks
from icefloe.pipelines.dedupe import keep_by_key
from icefloe.pipelines.readers import Remote, read_batches
from icefloe.pipelines.readers.base import CHILD_KEY
from icefloe.pipelines.spill import Spiller, SpillStream
from icefloe.pipelines.transforms import compile_transforms, user_code_boundary
from icefloe.types import parse_partition

__all__ = ["EventOutput", "PipelineRunner", "META_COLUMNS", "SpillStream", "CHILD_KEY"]

META_COLUMNS = ("_icefloe_event", "_icefloe_source", "_icefloe_ingested_at")


@dataclass
class EventOutput:
    event_id: str
    source_ref: str
    data: pa.Table
    quarantine: pa.Table | None
    stats: dict[str, int]
    steps: list[tuple[str, float, float, dict[str, Any]]] = field(default_factory=list)
    # whatever the spill sink returned for rows written ahead of the commit (lake data files)
    spilled: list[Any] = field(default_factory=list)
    # child tables (format xml `children`): child name -> rows held, and files written ahead
    children: dict[str, pa.Table] = field(default_factory=dict)
    children_spilled: dict[str, list[Any]] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}

    def add(self, step: str, started: float) -> None:
        now = time.time()
        span = self.spans.setdefault(step, [started, now, 0.0])
        span[1] = now
        span[2] += now - started


class PipelineRunner:
    def __init__(self, name: str, config: PipelineConfig, root: Path) -> None:
        self.name, self.config, self.root = name, config, root
        # an upsert cannot match a row without its key: such rows are quarantined, per event,
        # instead of failing the whole commit batch they would land in
        implicit = [{"not_null": list(config.write.key)}] if config.write.mode == "upsert" else []
        self.checks = [*config.checks, *implicit]
        validate_checks(self.checks)
        self.required = _required_columns(config)
        self.transforms = compile_transforms(config.transform, root)
        self.schema = config.read.arrow_schema()

    def run(
        self,
        event: Event,
        path: Path | Remote,
        spill: Callable[[str | None], SpillStream] | None = None,
        spill_bytes: int = 32 << 20,
        progress: Callable[[int, int], None] | None = None,
    ) -> EventOutput:
        """Read and shape one event's rows. With `spill` (a stream per target: None for the
        pipeline's table, a child name for a child table), once `spill_bytes` are held the rows go
        to those streams chunk by chunk (written to the lake, uncommitted), so memory stays bounded
        by chunk size instead of file size; small events stay in memory until their commit."""
        ctx = {"pipeline": self.name, "event": event.id, "file": event.object_ref}
        timer = _Timer()
        meta = _Meta(event)
        good: dict[str | None, list[pa.Table]] = {None: []}
        spillers: dict[str | None, Spiller] = {}
        bad: list[pa.Table] = []
        rows_in = held = 0
        failed_run = True

        def spill_all() -> None:
            for target, tables in good.items():
                if tables:
                    if target not in spillers:
                        assert spill is not None
                        # the pipeline's own table gets parallel writers; child tables one each
                        writers = self.config.batch.spill_writers if target is None else 1
                        spillers[target] = Spiller(partial(spill, target), writers)
                    spillers[target].submit(meta.add(pa.concat_tables(tables, promote_options="permissive")))
                    good[target] = []

        try:
            for target, passed, failed, read in self._shaped(event, path, timer, ctx, progress):
                rows_in += read
                good.setdefault(target, []).append(passed)
                held += passed.nbytes
                if failed is not None:
                    bad.append(failed)
                if spill is not None and held >= spill_bytes:
                    started = time.time()
                    spill_all()
                    held = 0
                    timer.add("spill", started)
            if spillers:  # once anything went ahead, the rest follows it: one way to commit
                spill_all()
            spilled = {target: spiller.finish() for target, spiller in spillers.items()}
            failed_run = False
        finally:
            for spiller in spillers.values():
                spiller.close(failed_run)
        started = time.time()
        main = good.pop(None)
        data = pa.concat_tables(main, promote_options="permissive") if main else pa.table({})
        if self.config.dedupe:
            with user_code_boundary(step="dedupe", **ctx):
                data = keep_by_key(data, self.config.dedupe.key, self.config.dedupe.keep)
            timer.add("dedupe", started)
        data = meta.add(data)
        children: dict[str, pa.Table | None] = {
            name: meta.add(pa.concat_tables(tables, promote_options="permissive")) if tables else None
            for name, tables in good.items()
            if name is not None
        }
        quarantine = meta.add(pa.concat_tables(bad, promote_options="permissive")) if bad else None
        spilled_main = spillers[None].rows if None in spillers else 0
        stats = {
            "rows_in": rows_in,
            "rows_out": data.num_rows + spilled_main,
            "rows_quarantined": quarantine.num_rows if quarantine is not None else 0,
        }
        for name in self.config.read.child_names():
            kept = children.get(name)
            held_rows = kept.num_rows if kept is not None else 0
            stats[f"rows_{name}"] = held_rows + (spillers[name].rows if name in spillers else 0)
        steps = [(name, s, e, {"busy_ms": round(busy * 1000, 2)}) for name, (s, e, busy) in timer.spans.items()]
        return EventOutput(
            event.id, event.object_ref, data, quarantine, stats, steps,
            spilled=spilled.get(None, []),
            children={n: t for n, t in children.items() if t is not None},
            children_spilled={n: f for n, f in spilled.items() if n is not None},
        )  # fmt: skip

    def empty(self, event: Event, step: tuple[str, float, float, dict[str, Any]]) -> EventOutput:
        """No rows for this event, without reading it: committed like an empty file (in `append` and
        `replace_source` it still takes the rows of its object's earlier version away)."""
        stats = {"rows_in": 0, "rows_out": 0, "rows_quarantined": 0}
        stats.update({f"rows_{name}": 0 for name in self.config.read.child_names()})
        return EventOutput(event.id, event.object_ref, _Meta(event).add(pa.table({})), None, stats, [step])

    def _shaped(
        self, event: Event, path: Path | Remote, timer: _Timer, ctx: dict[str, Any], progress: Callable[[int, int], None] | None
    ) -> Iterator[tuple[str | None, pa.Table, pa.Table | None, int]]:
        """(target, passing rows, failing rows, rows read) per batch: read -> transforms -> checks.

        Child-table batches (format xml) skip transforms and checks: those are written against
        the pipeline's own columns."""
        batches = read_batches(
            path,
            fmt=self.config.read.format,
            schema=self.schema,
            options=self.config.read.reader_options(),
            batch_rows=self.config.read.batch_rows,
            # an object store's errors name the bucket and key (s3://bucket/key:LINE)
            display_name=event.uri if event.uri.startswith("s3://") else event.object_ref,
            progress=progress,
            nullable_missing=self.config.read.nullable_missing,
        )
        try:
            while True:
                started = time.time()
                with user_code_boundary(step="read", **ctx):
                    batch = next(batches, None)
                timer.add("read", started)
                if batch is None:
                    return
                table = pa.Table.from_batches([batch])
                child = (batch.schema.metadata or {}).get(CHILD_KEY)
                if child is not None:
                    yield child.decode(), table.replace_schema_metadata(None), None, 0
                    continue
                for label, transform in self.transforms:
                    started = time.time()
                    with user_code_boundary(step=label, **ctx):
                        table = transform(table)
                    timer.add("transform", started)
                started = time.time()
                self._require_columns(table, event)
                with user_code_boundary(step="checks", **ctx):
                    passed, failed = apply_checks(table, self.checks)
                timer.add("checks", started)
                yield None, passed, failed, batch.num_rows
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops a parallel reader's worker processes when we stop early


    def _require_columns(self, table: pa.Table, event: Event) -> None:
        """A column the config names but the data lacks (only inferred columns can be missing:
        load refuses an undeclared one) fails the event, naming the config line that needs it."""
        for column, what, where in self.required:
            if column not in table.column_names:
                raise DataError(f"{what} names column {column!r}, which the file lacks (see {where})", file=event.object_ref)


def _required_columns(config: PipelineConfig) -> list[tuple[str, str, str]]:
    """(column, what needs it, where the config says so) for checks, keys and partitions."""
    required = []
    for i, check in enumerate(config.checks):
        kind, columns = check_columns(check)
        required += [(column, f"check {kind}", config.where("checks", i)) for column in columns]
    if config.write.mode == "upsert":
        required += [(column, "the upsert key write.key", config.where("write", "key")) for column in config.write.key]
    if config.dedupe is not None:
        required += [(column, "dedupe.key", config.where("dedupe", "key")) for column in config.dedupe.key]
    for j, spec in enumerate(config.write.partition):
        required.append((parse_partition(spec)[0], f"partition {spec!r}", config.where("write", "partition", j)))
    return required


class _Meta:
    """Adds the _icefloe_* lineage columns. Each is one value repeated, so one array of the largest
    chunk's length is built per event and every chunk reuses a zero-copy slice of it."""

    def __init__(self, event: Event) -> None:
        now = int(time.time() * 1_000_000)
        self.values = [
            ("_icefloe_event", pa.scalar(event.id, pa.large_string())),
            ("_icefloe_source", pa.scalar(event.object_ref, pa.large_string())),
            ("_icefloe_ingested_at", pa.scalar(now, pa.timestamp("us", tz="UTC"))),
        ]
        self.cache: dict[str, pa.Array] = {}

    def _column(self, name: str, value: pa.Scalar, lengths: list[int]) -> pa.ChunkedArray:
        longest = max(lengths, default=0)
        base = self.cache.get(name)
        if base is None or len(base) < longest:
            base = self.cache[name] = pa.repeat(value, longest)
        return pa.chunked_array([base.slice(0, n) for n in lengths], value.type)

    def add(self, data: pa.Table) -> pa.Table:
        data = data.drop_columns([c for c in META_COLUMNS if c in data.column_names])
        lengths = [len(c) for c in data.column(0).chunks] if data.num_columns else [data.num_rows]
        for name, value in self.values:
            data = data.append_column(name, self._column(name, value, lengths))
        return data

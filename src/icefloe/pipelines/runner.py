"""Run one event through its pipeline: read -> transform -> check -> dedupe -> staged Arrow rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from icefloe.config import PipelineConfig
from icefloe.ledger.base import Event
from icefloe.pipelines.checks import apply_checks, validate_checks
from icefloe.pipelines.dedupe import keep_by_key
from icefloe.pipelines.readers import read_batches
from icefloe.pipelines.transforms import compile_transforms, user_code_boundary

__all__ = ["EventOutput", "PipelineRunner", "META_COLUMNS", "Spill"]

Spill = Callable[[pa.Table], Any]
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
        validate_checks(config.checks)
        self.transforms = compile_transforms(config.transform, root)
        self.schema = config.read.arrow_schema()

    def run(self, event: Event, path: Path, spill: Spill | None = None, spill_bytes: int = 64 << 20) -> EventOutput:
        """Read and shape one event's rows. With `spill`, rows beyond `spill_bytes` are handed to it
        as they come (it writes them to the lake, uncommitted), so memory stays bounded by batch
        size instead of file size."""
        ctx = {"pipeline": self.name, "event": event.id, "file": event.object_ref}
        timer = _Timer()
        good: list[pa.Table] = []
        bad: list[pa.Table] = []
        rows_in = held = spilled_rows = 0
        spilled: list[Any] = []
        batches = read_batches(
            path,
            fmt=self.config.read.format,
            schema=self.schema,
            options=self.config.read.options,
            batch_rows=self.config.read.batch_rows,
            display_name=event.object_ref,
        )
        while True:
            started = time.time()
            with user_code_boundary(step="read", **ctx):
                batch = next(batches, None)
            timer.add("read", started)
            if batch is None:
                break
            rows_in += batch.num_rows
            table = pa.Table.from_batches([batch])
            for label, transform in self.transforms:
                started = time.time()
                with user_code_boundary(step=label, **ctx):
                    table = transform(table)
                timer.add("transform", started)
            started = time.time()
            with user_code_boundary(step="checks", **ctx):
                passed, failed = apply_checks(table, self.config.checks)
            timer.add("checks", started)
            good.append(passed)
            held += passed.nbytes
            if failed is not None:
                bad.append(failed)
            if spill is not None and held >= spill_bytes:
                started = time.time()
                chunk = _with_meta(pa.concat_tables(good, promote_options="permissive"), event)
                spilled.append(spill(chunk))
                spilled_rows += chunk.num_rows
                good, held = [], 0
                timer.add("spill", started)
        started = time.time()
        data = pa.concat_tables(good, promote_options="permissive") if good else pa.table({})
        if self.config.dedupe:
            with user_code_boundary(step="dedupe", **ctx):
                data = keep_by_key(data, self.config.dedupe.key, self.config.dedupe.keep)
            timer.add("dedupe", started)
        data = _with_meta(data, event)
        quarantine = _with_meta(pa.concat_tables(bad, promote_options="permissive"), event) if bad else None
        stats = {
            "rows_in": rows_in,
            "rows_out": data.num_rows + spilled_rows,
            "rows_quarantined": quarantine.num_rows if quarantine is not None else 0,
        }
        steps = [(name, s, e, {"busy_ms": round(busy * 1000, 2)}) for name, (s, e, busy) in timer.spans.items()]
        return EventOutput(event.id, event.object_ref, data, quarantine, stats, steps, spilled)


def _with_meta(data: pa.Table, event: Event) -> pa.Table:
    n = data.num_rows
    now = pa.scalar(int(time.time() * 1_000_000), pa.timestamp("us", tz="UTC"))
    for name in META_COLUMNS:
        if name in data.column_names:
            data = data.drop_columns([name])
    data = data.append_column("_icefloe_event", pa.repeat(pa.scalar(event.id, pa.large_string()), n))
    data = data.append_column("_icefloe_source", pa.repeat(pa.scalar(event.object_ref, pa.large_string()), n))
    return data.append_column("_icefloe_ingested_at", pa.repeat(now, n))

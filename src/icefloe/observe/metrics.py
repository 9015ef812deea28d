"""Prometheus metrics: counters the engine bumps at its step boundaries, gauges read from the ledger.

Counters and histograms live in this process (`process_metrics`), one set per process as
Prometheus expects, and count what this process did: objects landed, events settled, rows, bytes,
errors by stage and kind, commit and maintenance durations. Every series is made at start with a
zero for each configured source, pipeline and table (a rate over a series that appears late
misses its first increase); labels are only those names, the stage and the error's class, never
a file name.

The ledger-derived gauges (backlog, oldest pending event, dead letters, each table's last commit)
are read at scrape time by one indexed query (`Ledger.gauges`), so any process (a worker, or
`icefloe serve`) serves the whole deployment's backlog, not just its own.

`exposition(runtime)` is a scrape: (body, content type). `serve_metrics` is `run --metrics-port`.
They are plain numbers until a scrape: prometheus-client (a few hundred ms to import on a busy
machine, which every `run --once` and each worker of a crash loop would pay) is imported only
to encode one. With `telemetry: {metrics: false}` the engine gets `NULL_METRICS`, whose methods
do nothing.
"""

from __future__ import annotations

import bisect
import logging
import math
import platform
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icefloe.config import ProjectConfig
    from icefloe.ledger.base import Event
    from icefloe.runtime import Runtime

__all__ = ["NULL_METRICS", "Metrics", "NullMetrics", "exposition", "metrics_for", "process_metrics", "serve_metrics"]

log = logging.getLogger("icefloe")

# where errors are counted: finding and recording objects, reading and shaping an event, committing
# its rows, table maintenance
STAGES = ("land", "process", "commit", "maintain")
# the error classes a worker records (errors.py and the ledger's); others are counted as they come
KINDS = ("DataError", "SchemaError", "UserCodeError", "CommitConflictError", "StorageUnavailableError",
         "ObjectChangedError", "LedgerUnavailableError", "IcefloeError")  # fmt: skip
# a commit takes from milliseconds (a small file, SQLite catalog) to minutes (a big upsert)
_COMMIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_MAINTAIN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _version() -> str:
    try:
        return metadata.version("icefloe")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def config_tables(config: ProjectConfig) -> list[str]:
    """Every table the config writes: the pipelines' and their child tables."""
    tables = [p.write.table for p in config.pipelines.values()]
    tables += [t for p in config.pipelines.values() for t in p.write.children.values()]
    return list(dict.fromkeys(tables))


class NullMetrics:
    """`telemetry: {metrics: false}`: nothing is counted."""

    enabled = False

    def declare(self, config: ProjectConfig) -> None: ...
    def landed(self, source: str, events: list[Event]) -> None: ...
    def settled(self, ev: Event, state: str) -> None: ...
    def rows(self, pipeline: str, table: str, rows: int, quarantined: int) -> None: ...
    def read(self, pipeline: str, nbytes: int) -> None: ...
    def duplicate(self, pipeline: str) -> None: ...
    def error(self, stage: str, exc: BaseException | str) -> None: ...
    def commit_seconds(self, table: str, seconds: float) -> None: ...
    def lease_lost(self, count: int) -> None: ...
    def maintenance(self, table: str, outcome: str, seconds: float) -> None: ...


NULL_METRICS = NullMetrics()


class _Family:
    """One metric's series, by label values. A counter keeps [value]; a histogram keeps a count
    per bucket (not cumulative), then the sum and the count. Changed under the `Metrics` lock."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...] | None = None) -> None:
        self.name, self.help, self.labelnames, self.buckets = name, help, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}

    def touch(self, labels: tuple[str, ...]) -> list[float]:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = [0.0] * (1 if self.buckets is None else len(self.buckets) + 3)
        return found

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.touch(labels)[0] += amount

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        assert self.buckets is not None
        values = self.touch(labels)
        values[bisect.bisect_left(self.buckets, value)] += 1  # the last slot is +Inf
        values[-2] += value
        values[-1] += 1

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        if self.buckets is None:
            counter = CounterMetricFamily(self.name.removesuffix("_total"), self.help, labels=self.labelnames)
            for labels, (value,) in sorted(self.series.items()):
                counter.add_metric(list(labels), value)
            return counter
        histogram = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
        for labels, values in sorted(self.series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip([*self.buckets, math.inf], values[: len(self.buckets) + 1], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
            histogram.add_metric(list(labels), buckets, values[-2])
        return histogram


class Metrics(NullMetrics):
    """The process's counters. Plain numbers under one lock: a worker that is never scraped pays
    a dict update per event and batch, and prometheus-client is imported only by a scrape."""

    enabled = True

    def __init__(self) -> None:
        f = _Family
        self.discovered = f("icefloe_objects_discovered_total", "Objects landed (recorded in the ledger) by this process", ("source",))
        self.unrouted = f("icefloe_objects_unrouted_total", "Landed objects no route matched", ("source",))
        self.committed = f("icefloe_events_committed_total", "Events this process committed", ("pipeline", "table"))
        self.dead = f("icefloe_events_dead_total", "Events this process moved to the dead-letter queue", ("pipeline",))
        self.discarded = f("icefloe_events_discarded_total", "Events discarded (superseded or duplicate bytes)", ("pipeline",))
        self.retried = f("icefloe_events_retried_total", "Event failures that will be retried", ("pipeline",))
        self.rows_committed = f("icefloe_rows_committed_total", "Rows committed to tables", ("pipeline", "table"))
        self.rows_quarantined = f("icefloe_rows_quarantined_total", "Rows that failed a check, kept in quarantine", ("pipeline",))
        self.bytes_read = f("icefloe_read_bytes_total", "Bytes of landed objects pipelines read through (failed reads count as errors)", ("pipeline",))
        self.duplicates = f("icefloe_duplicates_skipped_total", "Objects skipped as duplicates of bytes loaded already (dedupe.content)", ("pipeline",))
        self.errors = f("icefloe_errors_total", "Errors by stage and error class", ("stage", "kind"))
        self.commit_duration = f("icefloe_commit_duration_seconds", "Duration of one table commit", ("table",), _COMMIT_BUCKETS)
        self.lease_expiries = f("icefloe_lease_expiries_total", "Leases this process found expired under it (another worker took the event)", ())
        self.maintenance_runs = f("icefloe_maintenance_runs_total", "Table maintenance runs", ("table", "outcome"))
        self.maintenance_duration = f("icefloe_maintenance_duration_seconds", "Duration of one maintenance run", ("table",), _MAINTAIN_BUCKETS)
        self.families = [v for v in vars(self).values() if isinstance(v, _Family)]
        self.lease_expiries.touch(())
        self._tables: dict[str, str] = {}  # pipeline -> its table, for the per-event counters
        self._declared: set[int] = set()
        self._lock = threading.Lock()

    def declare(self, config: ProjectConfig) -> None:
        """Every series of the config's sources, pipelines and tables, at zero."""
        with self._lock:
            if id(config) in self._declared:
                return
            self._declared.add(id(config))
            for source in config.sources:
                self.discovered.touch((source,))
                self.unrouted.touch((source,))
            for name, pipeline in config.pipelines.items():
                self._tables[name] = pipeline.write.table
                self.committed.touch((name, pipeline.write.table))
                self.rows_committed.touch((name, pipeline.write.table))
                for family in (self.dead, self.discarded, self.retried, self.rows_quarantined, self.bytes_read, self.duplicates):
                    family.touch((name,))
            for table in config_tables(config):
                self.commit_duration.touch((table,))
                self.maintenance_duration.touch((table,))
                for outcome in ("succeeded", "failed", "skipped"):
                    self.maintenance_runs.touch((table, outcome))
            for stage in STAGES:
                for kind in KINDS:
                    self.errors.touch((stage, kind))

    def collect(self) -> Iterator[Any]:
        """The metric families as prometheus-client's encoder takes them (a snapshot)."""
        from prometheus_client.core import GaugeMetricFamily

        with self._lock:
            families = [family.family() for family in self.families]
        info = GaugeMetricFamily("icefloe_build_info", "icefloe's version (always 1)", labels=["version", "python"])
        info.add_metric([_version(), platform.python_version()], 1)
        yield info
        yield from families

    def landed(self, source: str, events: list[Event]) -> None:
        if events:  # an object landed again with the same bytes is no new object
            with self._lock:
                self.discovered.inc((source,))
                if events[0].pipeline is None:
                    self.unrouted.inc((source,))

    def settled(self, ev: Event, state: str) -> None:
        pipeline = ev.pipeline or ""
        with self._lock:
            if state == "committed":
                self.committed.inc((pipeline, ev.table or self._tables.get(pipeline, "")))
            elif state == "dead":
                self.dead.inc((pipeline,))
            elif state == "discarded":
                self.discarded.inc((pipeline,))
            elif state == "retrying":
                self.retried.inc((pipeline,))

    def rows(self, pipeline: str, table: str, rows: int, quarantined: int) -> None:
        with self._lock:
            self.rows_committed.inc((pipeline, table), rows)
            if quarantined:
                self.rows_quarantined.inc((pipeline,), quarantined)

    def read(self, pipeline: str, nbytes: int) -> None:
        with self._lock:
            self.bytes_read.inc((pipeline,), nbytes)

    def duplicate(self, pipeline: str) -> None:
        with self._lock:
            self.duplicates.inc((pipeline,))

    def error(self, stage: str, exc: BaseException | str) -> None:
        with self._lock:
            self.errors.inc((stage, exc if isinstance(exc, str) else type(exc).__name__))

    def commit_seconds(self, table: str, seconds: float) -> None:
        with self._lock:
            self.commit_duration.observe((table,), seconds)

    def lease_lost(self, count: int) -> None:
        with self._lock:
            self.lease_expiries.inc((), count)

    def maintenance(self, table: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self.maintenance_runs.inc((table, outcome))
            if outcome != "skipped":
                self.maintenance_duration.observe((table,), seconds)


_PROCESS: Metrics | None = None
_PROCESS_LOCK = threading.Lock()


def process_metrics() -> Metrics:
    """This process's metrics (made on first use)."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = Metrics()
        return _PROCESS


def metrics_for(config: ProjectConfig) -> NullMetrics:
    """What an engine on `config` counts into: the process's metrics, its series declared."""
    if not config.telemetry.metrics:
        return NULL_METRICS
    metrics = process_metrics()
    metrics.declare(config)
    return metrics


class LedgerCollector:
    """The gauges a scrape reads from the ledger; a ledger that cannot be read gives
    `icefloe_ledger_up 0` and no other ledger gauge, never a failed scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        config = self.runtime.config
        tables = config_tables(config)
        up = GaugeMetricFamily("icefloe_ledger_up", "1 when the ledger answered this scrape's query")
        started = time.perf_counter()
        try:
            found = self.runtime.ledger.gauges(tables)
        except Exception as exc:  # noqa: BLE001 - the process's own counters are still worth serving
            log.warning("metrics: could not read the ledger: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        took = time.perf_counter() - started
        now = time.time()
        up.add_metric([], 1)
        yield up
        backlog = GaugeMetricFamily("icefloe_backlog_events", "Events waiting for or in work (landed, queued, running, retrying)", labels=["pipeline"])
        oldest = GaugeMetricFamily("icefloe_oldest_pending_age_seconds", "Age of the oldest pending event (0: none pending)", labels=["pipeline"])
        dead = GaugeMetricFamily("icefloe_dead_letter_events", "Events in the dead-letter queue", labels=["pipeline"])
        for pipeline in list(dict.fromkeys([*config.pipelines, *found.pending, *found.dead])):
            count, landed = found.pending.get(pipeline, (0, now))
            backlog.add_metric([pipeline], count)
            oldest.add_metric([pipeline], max(0.0, now - landed))
            dead.add_metric([pipeline], found.dead.get(pipeline, 0))
        last = GaugeMetricFamily("icefloe_table_last_commit_timestamp_seconds", "When the table's last event was committed (0: never)", labels=["table"])
        fresh = GaugeMetricFamily("icefloe_table_freshness_seconds", "Seconds since the table's last commit (NaN: never committed)", labels=["table"])
        for table in tables:
            at = found.last_commit.get(table)
            last.add_metric([table], at or 0.0)
            fresh.add_metric([table], max(0.0, now - at) if at is not None else math.nan)
        took_family = GaugeMetricFamily("icefloe_ledger_scrape_duration_seconds", "How long this scrape's ledger query took")
        took_family.add_metric([], took)
        yield from (backlog, oldest, dead, last, fresh, took_family)


class _Scrape:
    """The process's registry and the ledger's gauges, as one registry-like for the encoder."""

    def __init__(self, runtime: Runtime) -> None:
        self.ledger = LedgerCollector(runtime)

    def collect(self) -> Iterator[Any]:
        yield from process_metrics().collect()
        yield from self.ledger.collect()


def exposition(runtime: Runtime) -> tuple[bytes, str]:
    """A scrape of this process's metrics and the ledger's gauges: (body, content type), for any
    HTTP server to return (`icefloe serve` mounts it at /metrics)."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    if runtime.config.telemetry.metrics:
        process_metrics().declare(runtime.config)
    return generate_latest(_Scrape(runtime)), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


def serve_metrics(runtime: Runtime, port: int, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """`run --metrics-port`: /metrics on its own thread, on loopback unless `host` says otherwise.
    Returns (server, thread); `server.shutdown()` stops it."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(runtime))  # type: ignore[arg-type]
    return start_http_server(port, addr=host, registry=registry)  # type: ignore[no-any-return]

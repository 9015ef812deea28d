"""`icefloe.Project`: the Python API the CLI and the dashboard both call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from icefloe.config import ProjectConfig, load_config
from icefloe.errors import ConfigError, NotFoundError
from icefloe.ledger import Event, Ledger
from icefloe.routing import Router
from icefloe.runtime import FolderQuarantine, Runtime
from icefloe.sources import Source

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

    from icefloe.engine import Engine
    from icefloe.engine.summary import RunSummary
    from icefloe.observe.dlq import DeadLetterPage
    from icefloe.query.duck import QueryEngine

__all__ = ["Project"]


class Project:
    """A project folder holding icefloe.yaml. Backends open lazily, on first use.

    A facade: it parses the config, builds the `Runtime` the engine, upkeep, observe and query
    run on (`project.runtime`), and each method calls the library with it."""

    def __init__(
        self, path: str | Path = ".", *, env: str | None = None, overrides: dict[str, Any] | None = None
    ) -> None:
        self.root = Path(path).resolve()
        self.config: ProjectConfig = load_config(self.root, env=env, overrides=overrides)
        _refuse_what_cannot_run(self.config)
        self.quarantine_dir = self.root / ".icefloe" / "quarantine"
        self.runtime = Runtime(self.config, self.root, quarantine=FolderQuarantine(self.quarantine_dir))
        self._ingest_lock = threading.Lock()
        self._ingest_engine: Engine | None = None
        self._query_engine: QueryEngine | None = None
        self._query_lock = threading.Lock()
        self.router: Router = self.runtime.router

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

    @property
    def sources(self) -> dict[str, Source]:
        return self.runtime.sources

    def engine(self) -> Engine:
        from icefloe.engine import Engine

        return Engine(self.runtime)

    # -- doing --------------------------------------------------------------------------------------
    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        source: str | None = None,
        key_prefix: str = "",
        on_event: Callable[[Event, str], None] | None = None,
        on_landed: Callable[[int], None] | None = None,
        on_progress: Callable[[Event, int, int], None] | None = None,
        on_copy: Callable[[Path, int], None] | None = None,
        traceparent: str | None = None,
    ) -> list[Event]:
        """Land these files on a source, process and commit them, and return their final events.

        `on_landed(n)` is told how many events were landed; `on_event(event, state)` hears each
        one reach committed / retrying / dead; `on_progress(event, bytes, records)` hears how far
        the reader is into a file, and `on_copy(path, bytes)` how far its copy onto the source is
        (for progress bars). `traceparent`: the caller's W3C trace (an HTTP request's header,
        through `observe.tracing.context_from_traceparent`), which the events' traces join."""
        src = self._source(source)
        with self._ingest_lock:
            engine = self._ingester()
            engine.on_event = on_event
            engine.progress = on_progress
            ids: list[str] = []
            for path in paths:
                local = Path(path)
                if not local.is_file():
                    raise NotFoundError(f"{local}: no such file")
                copied = (lambda done, path=local: on_copy(path, done)) if on_copy is not None else None
                landed = src.put(local, key_prefix + local.name if key_prefix else None, copied)
                engine.land_object(landed, traceparent=traceparent)
                # the events of the version these bytes are (new, or the current version again)
                ids += [e.id for e in self.ledger.object_events(src.name, landed.key) if e.content_hash == landed.content_hash]
            if on_landed is not None:
                on_landed(len(set(ids)))
            # no reconcile: one ingest costs the same however many objects the source holds; the
            # maintenance its commits made due goes on beside the next ingest (`close` waits for it)
            engine.drain(reconcile=False, keep_maintenance=True)
        return [e for e in (self.ledger.get(i) for i in dict.fromkeys(ids)) if e is not None]

    def wait_for_maintenance(self) -> None:
        """Until the maintenance runs that this project's ingests handed over have finished (they
        run beside the ingests; `close` and `maintain` wait for them too)."""
        if self._ingest_engine is not None and self._ingest_engine.committer._maintenance is not None:
            self._ingest_engine.committer._maintenance.wait()

    def _ingester(self) -> Engine:
        """The engine `ingest` reuses: its maintenance thread outlives one call, so an ingest
        never waits for a compaction that an earlier one made due."""
        if self._ingest_engine is None:
            self._ingest_engine = self.engine()
        return self._ingest_engine

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> RunSummary:
        """Process events (until none is pending with `once`, else until `stop`); returns what
        this run did: events it committed, dead-lettered, discarded, left retrying."""
        engine = self.engine()
        if once:
            engine.drain(stop)
        else:
            engine.serve(stop or threading.Event())
        summary: RunSummary = engine.summary()
        return summary

    def _source(self, name: str | None) -> Source:
        if name is None:
            if not self.sources:
                raise ConfigError("the project has no sources")
            return next(iter(self.sources.values()))
        if name not in self.sources:
            raise NotFoundError(f"no source {name!r}; sources: {', '.join(self.sources)}")
        return self.sources[name]

    # -- asking -------------------------------------------------------------------------------------
    def sql(self, query: str, *, as_of: str | int | None = None) -> pa.Table:
        """Run a query; one DuckDB connection per project, whose views and scan plans follow
        each table's current snapshot (a query against an unchanged table plans nothing)."""
        return self.query_engine.query(query, as_of=as_of)

    @property
    def query_engine(self) -> QueryEngine:
        with self._query_lock:
            if self._query_engine is None:
                from icefloe.query.duck import QueryEngine

                self._query_engine = QueryEngine(self.runtime)
            return self._query_engine

    def status(self) -> list[dict[str, Any]]:
        from icefloe.observe.status import status

        return status(self.runtime)

    def trace(self, ref: str) -> dict[str, Any]:
        """One event's steps; `ref` is an event id (or prefix) or the object it came from
        (`source:key`, a key, a path under a source, a file name)."""
        from icefloe.observe.trace import trace

        return trace(self.runtime, ref)

    def tables(self) -> list[dict[str, Any]]:
        from icefloe.observe.tables import list_tables

        return list_tables(self.runtime)

    def history(self, table: str) -> list[dict[str, Any]]:
        from icefloe.observe.tables import history

        return history(self.runtime, table)

    def maintain(self, table: str | None = None, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Run table maintenance now (every table, or one); a dict per table, as the CLI prints it."""
        from icefloe.ledger import owner_id
        from icefloe.upkeep import Upkeep

        self.wait_for_maintenance()  # a run an ingest started would make this one skip the table
        names = [t["table"] for t in self.tables()]
        if table is not None and table not in names:
            raise NotFoundError(f"no table {table!r}; tables: {', '.join(names) or 'none yet'}")
        upkeep = Upkeep(self.runtime, owner_id())
        reports = []
        for name in [table] if table is not None else names:
            report = upkeep.run(name, dry_run=dry_run)
            reports.append(report.to_dict() if report else {"table": name, "notes": ["skipped: another worker is maintaining it"]})
        return reports

    def table_health(self, table: str) -> dict[str, Any]:
        """Files, small-file ratio, metadata size and the last maintenance run of one table."""
        from pyiceberg.exceptions import NoSuchTableError

        from icefloe.observe.status import upkeep_row

        try:
            loaded = self.catalog.load_table(table)
        except NoSuchTableError:
            raise NotFoundError(f"no table {table!r}") from None
        return {"table": table, **upkeep_row(self.runtime, loaded, table)}

    def dead_letters(self, *, limit: int = 100, after: int | None = None) -> list[Event]:
        """One page of dead events, in landing order (`after`: the last `seq` of the page before)."""
        return self.dead_letter_page(limit=limit, after=after).events

    def dead_letter_page(self, *, limit: int = 100, after: int | None = None) -> DeadLetterPage:
        """A page of dead events and how many more follow it."""
        from icefloe.observe.dlq import dead_letter_page

        return dead_letter_page(self.runtime, limit=limit, after=after)

    def replay(self, ids: list[str] | None) -> list[str]:
        return self.ledger.replay(self._resolve(ids))

    def discard(self, ids: list[str] | None) -> list[str]:
        return self.ledger.discard(self._resolve(ids))

    def event(self, id_or_prefix: str) -> Event:
        found = self.ledger.find(id_or_prefix)
        if found is None:
            raise NotFoundError(f"no event {id_or_prefix!r}")
        return found

    def _resolve(self, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else [self.event(i).id for i in ids]

    def close(self) -> None:
        if self._query_engine is not None:
            self._query_engine.close()
            self._query_engine = None
        if self._ingest_engine is not None:
            self._ingest_engine.close()  # the maintenance runs ingests handed over finish first
            self._ingest_engine = None
        self.runtime.close()


def _refuse_what_cannot_run(config: ProjectConfig) -> None:
    """Config mistakes that need the readers or the lake to see: refused at load, with their lines,
    rather than found by the first file that arrives."""
    from icefloe.lake.catalog import catalog_uri_problem
    from icefloe.ledger import ledger_uri_problem
    from icefloe.pipelines.validate import config_problems

    problems = config_problems(config)
    if (catalog := catalog_uri_problem(config.catalog)) is not None:
        problems.insert(0, (("catalog",), catalog))
    if (ledger := ledger_uri_problem(config.ledger)) is not None:
        problems.insert(0, (("ledger",), ledger))
    if problems:
        raise config.invalid(problems)

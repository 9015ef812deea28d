"""`Runtime`: the one value the engine, upkeep, observe and query run on.

It holds what a worker needs and nothing about where it came from: the parsed config, the
ledger, the catalog, the sources, the router, where quarantined rows go, and the clock the
engine's own timers read. `Project` builds one from a project folder; a test (or another host
process) builds one from whatever backends it likes, with no icefloe.yaml anywhere.

Backends open on first use, as a worker whose catalog is down must still start and retry its
events: `ledger`, `catalog` and `sources` are opened when first read, unless they were given.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from icefloe.config import ProjectConfig
from icefloe.ledger import Ledger, open_ledger
from icefloe.routing import Router
from icefloe.sources import Source, open_source

if TYPE_CHECKING:  # pyarrow and pyiceberg load when a backend needs them, not with the runtime
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

__all__ = ["Clock", "FolderQuarantine", "QuarantineSink", "Runtime", "SystemClock", "close_catalog"]


class Clock(ABC):
    """The time the engine's own timers read: batch `max_wait`, housekeeping, keep-alive pacing.
    A fake one lets a test move time on instead of sleeping. The ledger keeps its own time."""

    @abstractmethod
    def now(self) -> float:
        """Seconds since the epoch."""

    @abstractmethod
    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait `seconds` of this clock's time or until `stop` is set; True if it was set."""


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


class QuarantineSink(ABC):
    """Where rows that failed a check go (one set per event), and where SQL finds them again."""

    @abstractmethod
    def write(self, pipeline: str, event_id: str, rows: pa.Table) -> None:
        """Keep an event's quarantined rows; writing the same event again replaces them."""

    @abstractmethod
    def files(self) -> list[str]:
        """Parquet files holding every quarantined row, for `icefloe.quarantine` in SQL."""


class FolderQuarantine(QuarantineSink):
    """`<folder>/<pipeline>/<event id>.parquet`, each written whole or not at all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, pipeline: str, event_id: str, rows: pa.Table) -> None:
        import pyarrow.parquet as pq

        folder = self.folder / (pipeline or "_")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{event_id}.parquet"
        partial = target.with_suffix(".parquet.part")
        pq.write_table(rows, partial)
        os.replace(partial, target)

    def files(self) -> list[str]:
        return [str(p) for p in sorted(self.folder.glob("*/*.parquet"))]


class Runtime:
    """What the engine runs on. Give any backend to use it; the rest come from `config`."""

    def __init__(
        self,
        config: ProjectConfig,
        root: str | Path,
        *,
        ledger: Ledger | None = None,
        catalog_factory: Callable[[], Catalog] | None = None,
        sources: dict[str, Source] | None = None,
        router: Router | None = None,
        quarantine: QuarantineSink | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.root = Path(root)
        self.router = router if router is not None else Router(config.routes)
        self.quarantine = quarantine if quarantine is not None else FolderQuarantine(self.root / ".icefloe" / "quarantine")
        self.clock = clock if clock is not None else SystemClock()
        self._catalog_factory = catalog_factory
        # a fresh process given only the config would open the same ledger and catalog
        # (`engine.maintenance_process`); a backend handed in here it could not
        self.from_config = ledger is None and catalog_factory is None
        # a given backend is what the lazy property would have opened
        if ledger is not None:
            self.__dict__["ledger"] = ledger
        if sources is not None:
            self.__dict__["sources"] = sources

    @cached_property
    def ledger(self) -> Ledger:
        return open_ledger(self.config.ledger, self.root)

    @property
    def catalog_from_config(self) -> bool:
        """The catalog is the one `config.catalog` names (no catalog factory was given)."""
        return self._catalog_factory is None

    @cached_property
    def catalog(self) -> Catalog:
        """The catalog connection the engine commits through (opened on first use)."""
        return self.open_catalog()

    @cached_property
    def sources(self) -> dict[str, Source]:
        opened = {name: open_source(name, cfg, self.root, self.config.s3) for name, cfg in self.config.sources.items()}
        for name, source in opened.items():
            source.attach(_SourceLedgerView(self, name))
        return opened

    def open_catalog(self) -> Catalog:
        """A new catalog connection, e.g. for maintenance on its own thread; the caller closes it
        (`close_catalog`)."""
        if self._catalog_factory is not None:
            return self._catalog_factory()
        from icefloe.lake.catalog import open_catalog

        return open_catalog(self.config.catalog, self.config.warehouse, self.root, s3=self.config.s3)

    def close(self) -> None:
        """Close what was opened (a backend never read was never opened)."""
        if "ledger" in self.__dict__:
            self.ledger.close()
        if "catalog" in self.__dict__:
            close_catalog(self.catalog)


def close_catalog(catalog: Catalog) -> None:
    engine = getattr(catalog, "engine", None)
    if engine is not None:
        engine.dispose()  # SqlCatalog's connection pool (a PostgreSQL catalog holds sockets)


class _SourceLedgerView:
    """`SourceLedger` over the runtime's ledger (opened when first asked, like the rest)."""

    def __init__(self, runtime: Runtime, source: str) -> None:
        self.runtime, self.source, self.claims = runtime, source, f"{source}#claims"

    def states(self, keys: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for key in keys:
            events = self.runtime.ledger.object_events(self.source, key)
            if events:
                found[key] = [e.state for e in events]
        return found

    def stamps(self, keys: list[str]) -> dict[str, str]:
        return self.runtime.ledger.object_stamps(self.claims, keys)

    def claim(self, keys: list[str], stamp: str) -> dict[str, str]:
        return self.runtime.ledger.claim_stamps(self.claims, keys, stamp)

    def swap(self, old: str, new: str, *, count: int | None = None) -> bool:
        return self.runtime.ledger.swap_stamps(self.claims, old, new, count=count)

    def prune(self, upto: str, *, busy: str) -> str | None:
        return self.runtime.ledger.prune_stamps(self.claims, upto, busy=busy)

"""In-memory stand-ins for every seam of a `Runtime`, to build an engine with no project folder.

- `MemorySource`: icefloe's in-memory source (bytes in a dict, no local path: the readers get
  its stream spooled to a temporary file, as they will from an object store).
- `MemoryQuarantine`: quarantined rows kept per (pipeline, event id).
- `FakeClock`: time moves only when the test says so.
- `fake_runtime`: those, a `sqlite:///:memory:` ledger and a SqlCatalog on SQLite in a temp
  folder, around a config given as a dict (never read from an icefloe.yaml).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from icefloe.config import ProjectConfig
from icefloe.ledger import open_ledger
from icefloe.runtime import Clock, QuarantineSink, Runtime
from icefloe.sources.memory import MemorySource as _MemorySource

__all__ = ["FakeClock", "MemoryQuarantine", "MemorySource", "fake_runtime"]


class MemorySource(_MemorySource):
    """icefloe's in-memory source (no local path: readers get its stream spooled), with `add`."""

    def __init__(self, name: str, spool: Path) -> None:
        super().__init__(name)
        self.spool = spool  # unused: kept so the fixtures read as before

    def add(self, key: str, data: bytes) -> None:
        """An object lands (or a new version of it)."""
        self.write(key, data)


class MemoryQuarantine(QuarantineSink):
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], pa.Table] = {}

    def write(self, pipeline: str, event_id: str, rows: pa.Table) -> None:
        self.rows[(pipeline, event_id)] = rows

    def files(self) -> list[str]:
        return []  # nothing on disk for SQL to read


class FakeClock(Clock):
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        deadline = self.now() + seconds
        while not stop.is_set():
            if self.now() >= deadline:
                return False
            stop.wait(0.01)  # real time only to notice an advance or a stop
        return True


def fake_runtime(tmp_path: Path, pipelines: dict[str, Any], **top: Any) -> tuple[Runtime, MemorySource]:
    """A runtime of fakes with one memory source, `mem`, routed to every pipeline."""
    config = ProjectConfig.model_validate({
        # the config names the source (routes must); the runtime is given the source itself
        "sources": {"mem": {"type": "folder", "path": "unused"}},
        "routes": [{"source": "mem", "match": "**", "pipeline": list(pipelines)}],
        "pipelines": pipelines,
        **top,
    })  # fmt: skip
    source = MemorySource("mem", tmp_path / "spool")
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()

    def catalog() -> Catalog:
        return SqlCatalog("fake", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=warehouse.as_uri())

    runtime = Runtime(
        config, tmp_path, ledger=open_ledger("sqlite:///:memory:", tmp_path), catalog_factory=catalog,
        sources={"mem": source}, quarantine=MemoryQuarantine(), clock=FakeClock(),
    )  # fmt: skip
    return runtime, source

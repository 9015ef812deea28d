"""In-memory stand-ins for every seam of a `Runtime`, to build an engine with no project folder.

- `MemorySource`: objects are bytes in a dict; a spool folder gives the readers a local path
  (the fast path a folder source has), written when an object is read.
- `MemoryQuarantine`: quarantined rows kept per (pipeline, event id).
- `FakeClock`: time moves only when the test says so.
- `fake_runtime`: those, a `sqlite:///:memory:` ledger and a SqlCatalog on SQLite in a temp
  folder, around a config given as a dict (never read from an icefloe.yaml).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from icefloe.config import ProjectConfig
from icefloe.ledger import open_ledger
from icefloe.runtime import Clock, QuarantineSink, Runtime
from icefloe.sources import Landed, Source

__all__ = ["FakeClock", "MemoryQuarantine", "MemorySource", "fake_runtime"]


class MemorySource(Source):
    def __init__(self, name: str, spool: Path) -> None:
        self.name = name
        self.spool = spool
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}

    def add(self, key: str, data: bytes) -> None:
        """An object lands (or a new version of it)."""
        self.objects[key] = data
        self.versions[key] = self.versions.get(key, 0) + 1

    def _path(self, key: str) -> Path:
        return self.spool / key

    def scan(self) -> Iterator[Path]:
        for key in sorted(self.objects):
            yield self._path(key)

    def watch(self, on_change: Callable[[Path, bool], None]) -> Callable[[], None]:
        return lambda: None  # a test lands objects itself; reconcile finds them

    def key_for(self, path: Path) -> str:
        return path.relative_to(self.spool).as_posix()

    def is_stable(self, path: Path, closed: bool = False) -> bool:
        return self.key_for(path) in self.objects  # an object is whole the moment it is added

    def stamp(self, path: Path) -> str:
        key = self.key_for(path)
        if key not in self.objects:
            raise FileNotFoundError(key)
        return f"v{self.versions[key]}"

    def describe(self, path: Path) -> Landed:
        key = self.key_for(path)
        data = self.objects[key]
        return Landed(self.name, key, self.open_path(key), len(data), hashlib.sha256(data).hexdigest(), self.stamp(path))

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        key = key or local.name
        self.add(key, local.read_bytes())
        return self.describe(self._path(key))

    def open_path(self, key: str) -> Path:
        path = self._path(key)
        if key in self.objects:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.objects[key])
        return path


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

"""An in-memory source with no local path: the stand-in for an object store in tests, and the
shape the S3 source follows (versions like etags, streams, no `local_path`)."""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from icefloe.sources.base import Landed, ListPage, ObjectRef, Source, check_key

__all__ = ["MemorySource"]

_versions = itertools.count(1)


class MemorySource(Source):
    def __init__(self, name: str, *, settle: float = 0.0) -> None:
        self.name, self.settle = name, settle
        self._objects: dict[str, tuple[bytes, ObjectRef]] = {}
        self._watchers: list[Callable[[str, bool], None]] = []
        self._lock = threading.Lock()

    def write(self, key: str, data: bytes, *, modified_at: float | None = None) -> ObjectRef:
        """Store bytes under a key (a new version each time, as an object store does) and tell watchers."""
        check_key(self.name, key)
        ref = ObjectRef(
            self.name, key, len(data), time.time() if modified_at is None else modified_at, f"v{next(_versions)}"
        )
        with self._lock:
            self._objects[key] = (data, ref)
            watchers = list(self._watchers)
        for notify in watchers:
            notify(key, True)
        return ref

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list(self, after: str | None = None, limit: int = 1000) -> ListPage:
        with self._lock:
            keys = sorted(k for k in self._objects if after is None or k > after)
            refs = [self._objects[k][1] for k in keys[:limit]]
        return ListPage(refs, refs[-1].key if len(keys) > limit else None)

    def head(self, key: str) -> ObjectRef | None:
        check_key(self.name, key)
        with self._lock:
            found = self._objects.get(key)
        return found[1] if found else None

    def open(self, key: str) -> BinaryIO:
        check_key(self.name, key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise FileNotFoundError(f"{self.name}:{key}")
        return io.BytesIO(found[0])

    def describe(self, ref: ObjectRef) -> Landed:
        check_key(self.name, ref.key)
        with self._lock:  # bytes and version read together: they cannot tear
            found = self._objects.get(ref.key)
        if found is None:
            raise FileNotFoundError(f"{self.name}:{ref.key}")
        data, current = found
        return Landed(
            self.name,
            ref.key,
            f"memory://{self.name}/{ref.key}",
            len(data),
            hashlib.sha256(data).hexdigest(),
            current.version,
        )

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        data = local.read_bytes()
        ref = self.write(key or local.name, data)
        if progress is not None:
            progress(len(data))
        return self.describe(ref)

    def watch(self, on_change: Callable[[str, bool], None]) -> Callable[[], None]:
        with self._lock:
            self._watchers.append(on_change)

        def stop() -> None:
            with self._lock:
                if on_change in self._watchers:
                    self._watchers.remove(on_change)

        return stop

"""What a reader reads for an event: the folder's own file, the object's bytes in memory (small
objects, fetched ahead on a bounded pool while earlier events are parsed), the object in place as
a seekable stream of ranged reads (big objects of a store that pins versions), or, for any other
backend, its stream spooled to a temporary file.

Small objects cost a GET each (tens of ms on a store) and almost no parsing: read one after the
other, the GETs are most of the time. `Fetcher.ahead` starts up to `THREADS` of them at once for
the events of a lease, holding at most `BUDGET` bytes; each is pinned to the event's version, so a
replaced object fails the same way (ObjectChangedError) when its event takes the bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from icefloe.pipelines.readers import Remote
from icefloe.sources.spool import readable_path

if TYPE_CHECKING:
    from icefloe.ledger.base import Event
    from icefloe.sources.base import Source

__all__ = ["Fetcher"]

THREADS = 8  # GETs in flight at once for small objects
SMALL = 4 << 20  # objects up to this size are fetched whole, ahead of their turn
BUDGET = 64 << 20  # bytes fetched ahead and not yet taken, at most


def _stamp_size(stamp: str) -> int | None:
    size = stamp.rpartition(":")[2]
    return int(size) if size.isdigit() else None


def _in_place(source: Source, ev: Event, pinned: bool) -> bool:
    # unpinned reads (hash_content) compare HEAD before and after: one local copy, one version
    return pinned and source.seekable_reads and source.local_path(ev.key) is None and _stamp_size(ev.stamp) is not None


class Fetcher:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[str, Future[bytes]] = {}

    def ahead(self, jobs: list[tuple[Event, Source]]) -> None:
        """Start fetching the small objects of these events (in this order), within the budget."""
        held = 0
        for ev, source in jobs:
            size = _stamp_size(ev.stamp) if ev.stamp else None
            if size is None or size > SMALL or not _in_place(source, ev, source.pins_reads) or ev.id in self._ahead:
                continue
            if held + size > BUDGET:
                break
            held += size
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="icefloe-fetch")
            self._ahead[ev.id] = self._pool.submit(_read, source, ev.key, ev.stamp)

    def forget(self) -> None:
        """Drop what was fetched for events that were not processed (released, held back)."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()

    @contextmanager
    def readable(self, source: Source, ev: Event, pinned: bool) -> Iterator[Path | Remote]:
        """The event's bytes for `PipelineRunner.run` (see the module docstring)."""
        name = ev.key.rsplit("/", 1)[-1]
        future = self._ahead.pop(ev.id, None)
        if future is not None:
            data = future.result()  # its error (changed, gone, unreachable) is the event's
            yield Remote(name, len(data), lambda: io.BytesIO(data))
            return
        if _in_place(source, ev, pinned):
            size = _stamp_size(ev.stamp)
            assert size is not None
            key, stamp = ev.key, ev.stamp

            def reopen() -> io.BufferedIOBase:
                stream = source.open_version(key, stamp)
                assert stream is not None  # pinned: the source pins reads
                return stream  # type: ignore[return-value]

            yield Remote(name, size, reopen)  # type: ignore[arg-type]
            return
        with readable_path(source, ev.key, ev.stamp if pinned else None) as path:
            yield path

    def close(self) -> None:
        self.forget()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _read(source: Source, key: str, stamp: str) -> bytes:
    stream = source.open_version(key, stamp)
    assert stream is not None
    with stream:
        return stream.read()

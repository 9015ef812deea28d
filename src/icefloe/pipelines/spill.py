"""Write an event's rows ahead of its commit on background threads, several Parquet files at once.

Profiling `icefloe run --once` on a 2M-row CSV showed the Parquet encoder (dictionary encoding and
zstd, on one thread) as the step everything else waited for: it costs more than parsing. A single
Parquet file is written by one thread, so with `writers` > 1 the chunks go round-robin to that
many streams (one data file each, committed in the same snapshot), each on a thread of its own;
pyarrow releases the GIL while it encodes, so they run on separate cores alongside the reader.

Memory stays within `writers` chunks in flight plus the one being gathered. Each stream is used
by one thread at a time and gets its chunks in order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

import pyarrow as pa

__all__ = ["SpillStream", "Spiller"]


class SpillStream(Protocol):
    """Where an event's rows go ahead of its commit (the lake's DataFileStream)."""

    def write(self, chunk: pa.Table) -> None: ...
    def close(self) -> list[Any]: ...
    def abort(self) -> None: ...


class Spiller:
    """Feeds chunks to up to `writers` spill streams from `make`, on as many background threads."""

    def __init__(self, make: Callable[[], SpillStream], writers: int = 1) -> None:
        self.make = make
        self.writers = max(1, writers)
        self.pool = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="icefloe-spill")
        self.streams: list[SpillStream] = []
        self.pending: list[Future[Any] | None] = []
        self.schema: pa.Schema | None = None
        self.serial = False  # set once a chunk's columns differ from the first chunk's
        self.chunks = 0
        self.rows = 0

    def submit(self, chunk: pa.Table) -> None:
        if self.schema is None:
            self.schema = chunk.schema
        elif not self.serial and not chunk.schema.equals(self.schema):
            # a schema change evolves the table from one stream; the others hold table objects
            # from before it, so from here on one stream writes everything, in order
            self.serial = True
            self._wait_all()
        lane = 0 if self.serial else self.chunks % self.writers
        if lane == len(self.streams):
            # a new stream opens the table only after the first write created (or evolved) it
            self._wait_all()
            self.streams.append(self.make())
            self.pending.append(None)
        before = self.pending[lane]
        if before is not None:
            before.result()
        self.pending[lane] = self.pool.submit(self.streams[lane].write, chunk)
        self.chunks += 1
        self.rows += chunk.num_rows

    def _wait_all(self) -> None:
        for i, future in enumerate(self.pending):
            if future is not None:
                future.result()
                self.pending[i] = None

    def finish(self) -> list[Any]:
        """Every stream's data files, in stream order (their last files close in parallel)."""
        self._wait_all()
        closing = [self.pool.submit(stream.close) for stream in self.streams]
        return [data_file for future in closing for data_file in future.result()]

    def close(self, failed: bool) -> None:
        wait([f for f in self.pending if f is not None])  # the error already surfaced or is moot
        if failed:
            for stream in self.streams:
                stream.abort()
        self.pool.shutdown(wait=True)

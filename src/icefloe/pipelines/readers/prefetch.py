"""Read ahead on a thread: the next batches are parsed while the caller checks and writes the last.

pyarrow's CSV and JSON parsers release the GIL, so a reader thread parsing block N+1 runs on the
other core while the pipeline thread runs checks on block N and the spill thread encodes Parquet.
The queue between them holds at most `depth` batches, so memory stays bounded by batch size.

The caller sees exactly what the plain generator would give: the same batches in the same order,
and an error (a DataError naming file:line) raised at the same point, after the batches before it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetched"]

T = TypeVar("T")

_END = object()


class Prefetched(Iterator[T], Generic[T]):
    """Iterates `source` on a background thread, up to `depth` items ahead of the caller.

    The thread starts on the first `next()` (building one reads nothing). `close()` stops it
    early and closes `source` on that thread, which is where the generator runs."""

    def __init__(self, source: Iterator[T], depth: int = 2, name: str = "icefloe-read") -> None:
        self._source = source
        self._queue: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None
        self._done = False

    @staticmethod
    def _run(source: Iterator[T], out: queue.Queue[tuple[object, BaseException | None]], stop: threading.Event) -> None:
        # holds no reference to the Prefetched itself: a caller that drops it without close()
        # lets it be collected, and __del__'s stop flag ends this thread at its next put
        def put(item: object, error: BaseException | None = None) -> bool:
            while not stop.is_set():
                try:
                    out.put((item, error), timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in source:
                if not put(item) or stop.is_set():
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            put(_END, exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._thread is None:
            args = (self._source, self._queue, self._stop)
            self._thread = threading.Thread(target=self._run, args=args, name=self._name, daemon=True)
            self._thread.start()
        item, error = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            if error is not None:
                raise error
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop reading ahead; waits for the thread (at most one batch being parsed) to end."""
        self._done = True
        thread = self._thread
        if thread is None:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
            return
        self._stop.set()
        thread.join()

    def __del__(self) -> None:
        if self._thread is not None and not self._done:
            self._stop.set()

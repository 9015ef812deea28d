"""A seekable file object over one object version in a store that serves byte ranges.

Read front to back, it keeps a bounded read-ahead window: at most `window` parts of `part`
bytes are fetched (in flight or waiting to be read) at a time, on a pool of `window` threads, so
memory is `window x part` whatever the object's size. With `window` 1 it reads one streamed GET
from the current offset instead (one request for the whole object, no parts held).

A seek (Parquet's footer, a zip's central directory) drops the window; the reads after it fetch
only what they ask for until they run sequentially again, so random access fetches no read-ahead
it then throws away.

The backend gives two functions: `fetch(start, end)` -> exactly bytes [start, end) of the pinned
version, and `stream(start)` -> a raw stream of bytes [start, size). Each raises the backend's
error (an object changed mid-read is an `ObjectChangedError` there).
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from icefloe.errors import StorageUnavailableError

__all__ = ["ObjectStream"]

# a random read fetches at least this much: pyarrow asks for a footer's 8 bytes, then its length
RANDOM_MIN = 256 << 10


class ObjectStream(io.RawIOBase):
    def __init__(
        self,
        where: str,
        size: int,
        fetch: Callable[[int, int], bytes],
        stream: Callable[[int], Any] | None = None,
        *,
        part: int,
        window: int,
        first: bytes = b"",
        first_body: Any = None,
    ) -> None:
        """`first`: bytes [0, len(first)) already fetched (the answer that told the size);
        `first_body`: an open raw stream of bytes [0, size) (a plain GET's body) for window 1."""
        super().__init__()
        if part < 1 or window < 1:
            raise ValueError("part and window must be at least 1")
        self.where, self.size = where, size
        self._fetch, self._stream = fetch, stream
        self._part, self._window = part, window
        self._pos = 0
        self._buf, self._buf_at = memoryview(first), 0  # bytes held, and the offset of their start
        self._ahead: deque[tuple[int, int, Future[bytes]]] = deque()
        self._next = len(first)  # where the window fetches next
        self._sequential = True
        self._random_end = -1  # the end of the last random read: a read from there is sequential again
        self._pool: ThreadPoolExecutor | None = None
        self._body, self._body_at = first_body, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(f"{self.where}: seek to {pos}, before the start")
        if pos != self._pos:
            # back into the part held, or on to the next one fetched: still a front-to-back read
            self._sequential = self._held(pos) or bool(self._ahead and self._ahead[0][0] == pos)
        self._pos = pos
        return pos

    def _held(self, pos: int) -> bool:
        return self._buf_at <= pos < self._buf_at + len(self._buf)

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self._pos >= self.size or want == 0:
            return 0
        if not self._held(self._pos):
            if self._window == 1 and self._stream is not None and self._sequential:
                return self._from_body(buffer)
            self._refill(want)
        start = self._pos - self._buf_at
        n = min(want, len(self._buf) - start)
        buffer[:n] = self._buf[start : start + n]
        self._pos += n
        if self._pos >= self._buf_at + len(self._buf):
            self._buf, self._buf_at = memoryview(b""), self._pos  # handed out: not held any longer
        return n

    def _from_body(self, buffer: Any) -> int:
        if self._body is None or self._body_at != self._pos:
            self._close_body()
            assert self._stream is not None
            self._body, self._body_at = self._stream(self._pos), self._pos
        view = memoryview(buffer).cast("B")[: self.size - self._pos]
        n = self._body.readinto(view)
        if not n:
            raise StorageUnavailableError(f"{self.where}: the download ended {self.size - self._pos} byte(s) short")
        self._pos += n
        self._body_at = self._pos
        return n

    def _refill(self, want: int) -> None:
        pos = self._pos
        self._buf = memoryview(b"")  # not at pos (a seek left it): it no longer counts as held
        if not self._sequential and pos == self._random_end:
            self._sequential = True  # reading on from where the last random read ended
        if not self._sequential:
            self._drop_window()
            end = min(self.size, pos + max(want, RANDOM_MIN))
            self._buf, self._buf_at = memoryview(self._checked(pos, end, self._fetch(pos, end))), pos
            self._random_end = end
            return
        if not self._ahead or self._ahead[0][0] != pos:
            self._drop_window()
            self._next = pos
        self._schedule()
        start, end, future = self._ahead.popleft()
        data = self._checked(start, end, future.result())
        self._buf, self._buf_at = memoryview(data), start
        self._schedule()

    def _checked(self, start: int, end: int, data: bytes) -> bytes:
        if len(data) != end - start:
            raise StorageUnavailableError(f"{self.where}: bytes {start}-{end - 1} came back {len(data)} long")
        return data

    def _schedule(self) -> None:
        # the part being read counts against the window: `window` parts held at most
        while len(self._ahead) + (1 if self._buf else 0) < self._window and self._next < self.size:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._window, thread_name_prefix="icefloe-get")
            end = min(self._next + self._part, self.size)
            self._ahead.append((self._next, end, self._pool.submit(self._fetch, self._next, end)))
            self._next = end

    def _drop_window(self) -> None:
        for _, _, future in self._ahead:
            future.cancel()
        self._ahead.clear()

    def _close_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001 - a body dropped half read may fail to close; nothing to keep
                pass
            self._body = None

    def close(self) -> None:
        if not self.closed:
            self._drop_window()
            self._close_body()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._buf = memoryview(b"")
        super().close()

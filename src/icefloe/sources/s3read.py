"""Reading one S3 object as a stream: one GET for a small object, ranged GETs in parallel for a
big one, every part pinned to the version the first answer came from (If-Match on its ETag),
so an object rewritten mid-read is an `ObjectChangedError`, never a mix of two versions."""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from icefloe.errors import ObjectChangedError, StorageUnavailableError
from icefloe.sources.s3conn import MISSING, s3_error, status_of

__all__ = ["open_object"]


def open_object(
    client: Any, bucket: str, key: str, where: str, *, part_size: int, threshold: int, parallel: int, etag: str | None = None
) -> BinaryIO:
    """The object's bytes front to back. The first GET asks for the first part only: its answer
    says the size and ETag, so a small object costs one request and no HEAD."""
    from botocore.exceptions import ClientError

    pin = {"IfMatch": f'"{etag}"'} if etag else {}
    # parallel 1: one plain GET whatever the size (some stores serve a range as slowly as all of it)
    ranged = {"Range": f"bytes=0-{part_size - 1}"} if parallel > 1 else {}
    try:
        try:
            answer = client.get_object(Bucket=bucket, Key=key, **ranged, **pin)
        except ClientError as exc:
            if status_of(exc)[1] != 416:
                raise
            answer = client.get_object(Bucket=bucket, Key=key, **pin)  # an empty object has no byte 0
    except ClientError as exc:
        if status_of(exc)[0] in MISSING:
            raise ObjectChangedError(f"{where} was deleted before it could be read") from exc
        raise s3_error(exc, where) from exc
    except Exception as exc:
        raise s3_error(exc, where) from exc
    total = _total(answer)
    length = int(answer.get("ContentLength", 0))
    first = _Body(answer["Body"], where, length)
    if total is None or total <= length or total < threshold:
        if total is not None and total > length:  # mid-size: the rest in one more GET
            rest = _Parts(client, bucket, key, where, _etag(answer), length, total, total - length, 1)
            return io.BufferedReader(_Chain(first, rest), buffer_size=1 << 20)
        return io.BufferedReader(first, buffer_size=1 << 20)
    parts = _Parts(client, bucket, key, where, _etag(answer), length, total, part_size, parallel)
    return io.BufferedReader(_Chain(first, parts), buffer_size=1 << 20)


def _total(answer: dict[str, Any]) -> int | None:
    # "bytes 0-8388607/1073741824"; absent when the store ignored the Range and sent it all
    content_range = answer.get("ContentRange")
    if not content_range or "/" not in content_range:
        return None
    size = content_range.rsplit("/", 1)[1]
    return int(size) if size.isdigit() else None


def _etag(answer: dict[str, Any]) -> str:
    return str(answer.get("ETag", "")).strip('"')


class _Body(io.RawIOBase):
    """A botocore body whose network failures are icefloe's transient errors."""

    def __init__(self, body: Any, where: str, length: int) -> None:
        super().__init__()
        self._body, self._where, self._left = body, where, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        try:
            data = self._body.read(min(len(buffer), self._left))
        except Exception as exc:  # urllib3's ProtocolError, ReadTimeoutError, IncompleteReadError
            raise StorageUnavailableError(f"{self._where}: the download broke off: {exc}") from exc
        if not data:
            raise StorageUnavailableError(f"{self._where}: the download ended {self._left} byte(s) short")
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _Parts(io.RawIOBase):
    """Bytes [start, total) as ranged GETs, up to `parallel` in flight, handed out in order; at
    most `parallel` parts are held in memory."""

    def __init__(
        self, client: Any, bucket: str, key: str, where: str, etag: str, start: int, total: int, part: int, parallel: int
    ) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._where, self._etag = client, bucket, key, where, etag
        self._next, self._total, self._part, self._parallel = start, total, part, parallel
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="icefloe-s3-get")
        self._pending: deque[Future[bytes]] = deque()
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _fetch(self, start: int, end: int) -> bytes:
        from botocore.exceptions import ClientError

        pin = {"IfMatch": f'"{self._etag}"'} if self._etag else {}
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end - 1}", **pin)
            data = answer["Body"].read()
        except ClientError as exc:
            if status_of(exc)[0] in MISSING:
                raise ObjectChangedError(f"{self._where} was deleted while it was being read") from exc
            raise s3_error(exc, self._where) from exc
        except Exception as exc:
            raise s3_error(exc, self._where) from exc
        if len(data) != end - start:
            raise StorageUnavailableError(f"{self._where}: bytes {start}-{end - 1} came back {len(data)} long")
        return bytes(data)

    def _schedule(self) -> None:
        while len(self._pending) < self._parallel and self._next < self._total:
            end = min(self._next + self._part, self._total)
            self._pending.append(self._pool.submit(self._fetch, self._next, end))
            self._next = end

    def readinto(self, buffer: Any) -> int:
        if not self._current:
            self._schedule()
            if not self._pending:
                return 0
            self._current = memoryview(self._pending.popleft().result())
            self._schedule()
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
        super().close()


class _Chain(io.RawIOBase):
    def __init__(self, *streams: io.RawIOBase) -> None:
        super().__init__()
        self._streams = list(streams)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._streams:
            n = self._streams[0].readinto(buffer)
            if n:
                return n
            self._streams.pop(0).close()
        return 0

    def close(self) -> None:
        if not self.closed:
            for stream in self._streams:
                stream.close()
        super().close()

"""Reading one S3 object as a seekable stream (`objstream.ObjectStream`): one GET for a small
object; for a big one ranged GETs, `parallel` parts in flight at most, or with `parallel: 1` one
streamed GET. Every request after the first is pinned to the version the first answer came from
(If-Match on its ETag, and the ETag of each answer compared), so an object rewritten mid-read is
an `ObjectChangedError` naming s3://bucket/key, never a mix of two versions."""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from icefloe.errors import ObjectChangedError, StorageUnavailableError
from icefloe.sources.objstream import ObjectStream
from icefloe.sources.s3conn import MISSING, s3_error, status_of

__all__ = ["open_object"]


def open_object(
    client: Any, bucket: str, key: str, where: str, *, part_size: int, threshold: int, parallel: int, etag: str | None = None
) -> BinaryIO:
    """The object's bytes, seekable. The first GET asks for the first part only (parallel > 1):
    its answer says the size and ETag, so a small object costs one request and no HEAD."""
    get = _Getter(client, bucket, key, where, etag)
    # parallel 1: one plain GET whatever the size (some stores serve a range as slowly as all of it)
    answer = get.first(part_size if parallel > 1 else None)
    total = _total(answer)
    length = int(answer.get("ContentLength", 0))
    if total is None:  # the whole object came (no Range asked, or the store ignored it)
        total = length
        if length > part_size:
            # read as it arrives: held whole, a 1 GB object was 1.2 GB of RSS (bench.s3, parallel 1)
            body = _Body(answer["Body"], where)
            raw = ObjectStream(where, total, get.range, get.stream, part=part_size, window=1, first_body=body)
            return io.BufferedReader(raw, buffer_size=1 << 20)
    first = _read_all(answer["Body"], where, length)
    if total <= length:
        return io.BufferedReader(_Bytes(first, where), buffer_size=1 << 20)
    window = parallel if total >= threshold else 1
    # mid-size objects (below the threshold): the rest as one more GET
    part = part_size if window > 1 else total - length
    raw = ObjectStream(where, total, get.range, get.stream, part=part, window=max(window, 2), first=first)
    return io.BufferedReader(raw, buffer_size=1 << 20)


class _Getter:
    """GETs of one object, pinned to one ETag once the first answer told it."""

    def __init__(self, client: Any, bucket: str, key: str, where: str, etag: str | None) -> None:
        self.client, self.bucket, self.key, self.where, self.etag = client, bucket, key, where, etag

    def _get(self, **extra: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        pin = {"IfMatch": f'"{self.etag}"'} if self.etag else {}
        try:
            answer: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=self.key, **extra, **pin)
        except ClientError as exc:
            if status_of(exc)[0] in MISSING:
                raise ObjectChangedError(f"{self.where} was deleted while it was being read") from exc
            raise s3_error(exc, self.where) from exc
        except Exception as exc:
            raise s3_error(exc, self.where) from exc
        got = _etag(answer)
        if self.etag is None:
            self.etag = got
        elif got and got != self.etag:  # a store that ignores If-Match must not mix versions either
            answer["Body"].close()
            raise ObjectChangedError(f"{self.where} changed while it was being read (ETag {self.etag} -> {got})")
        return answer

    def first(self, part: int | None) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if part is None:
            return self._get()
        try:
            return self._get(Range=f"bytes=0-{part - 1}")
        except StorageUnavailableError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and status_of(cause)[1] == 416):
                raise
        return self._get()  # an empty object has no byte 0

    def range(self, start: int, end: int) -> bytes:
        answer = self._get(Range=f"bytes={start}-{end - 1}")
        return _read_all(answer["Body"], self.where, int(answer.get("ContentLength", end - start)))

    def stream(self, start: int) -> io.RawIOBase:
        answer = self._get(Range=f"bytes={start}-") if start else self._get()
        return _Body(answer["Body"], self.where)


def _total(answer: dict[str, Any]) -> int | None:
    # "bytes 0-8388607/1073741824"; absent when the store ignored the Range and sent it all
    content_range = answer.get("ContentRange")
    if not content_range or "/" not in content_range:
        return None
    size = content_range.rsplit("/", 1)[1]
    return int(size) if size.isdigit() else None


def _etag(answer: dict[str, Any]) -> str:
    return str(answer.get("ETag", "")).strip('"')


def _read_all(body: Any, where: str, length: int) -> bytes:
    try:
        data = body.read()
    except Exception as exc:  # urllib3's ProtocolError, ReadTimeoutError, IncompleteReadError
        raise StorageUnavailableError(f"{where}: the download broke off: {exc}") from exc
    if len(data) != length:
        raise StorageUnavailableError(f"{where}: the download ended after {len(data)} of {length} byte(s)")
    return bytes(data)


class _Body(io.RawIOBase):
    """A botocore body whose network failures are icefloe's transient errors."""

    def __init__(self, body: Any, where: str) -> None:
        super().__init__()
        self._body, self._where = body, where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            raise StorageUnavailableError(f"{self._where}: the download broke off: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _Bytes(io.BytesIO):
    """A whole small object, already read (seekable, like every stream `open_object` gives)."""

    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(data)
        self.where = where

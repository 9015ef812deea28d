"""The byte streams the CSV reader parses: UTF-8 whatever the declared encoding, with a final newline.

pyarrow parses UTF-8 only. A file in another declared `encoding` is transcoded here, chunk by
chunk, so the fast reader and the slow line finder (`locate`) read the same text, and a byte that
is invalid in that encoding is a DataError with its line and byte offset in the original file.
"""

from __future__ import annotations

import codecs
import io
from typing import Any, BinaryIO

from icefloe.errors import DataError
from icefloe.pipelines.formats import check_encoding

__all__ = ["Decoded", "EndsLine", "check_encoding", "is_utf8"]

_CHUNK = 1 << 20


def is_utf8(name: str) -> bool:
    # pyarrow reads UTF-8 itself and skips a UTF-8 byte order mark, so there is nothing to transcode
    return name in ("utf-8", "utf-8-sig")


class Decoded:
    """An `Opener` (see `locate`) over another one whose bytes are in `encoding`: reads give UTF-8."""

    def __init__(self, inner: Any, encoding: str) -> None:
        self.inner, self.encoding = inner, encoding

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def gzip(self) -> bool:
        return bool(self.inner.gzip)

    def open(self) -> BinaryIO:
        return io.BufferedReader(_Transcoder(self.inner.open(), self.encoding, self.name), buffer_size=_CHUNK)


class _Transcoder(io.RawIOBase):
    def __init__(self, raw: BinaryIO, encoding: str, name: str) -> None:
        super().__init__()
        self._raw, self._encoding, self._name = raw, encoding, name
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._out = b""
        self._consumed = 0  # bytes of the original stream handed to the decoder
        self._lines = 0  # line breaks in the text decoded so far
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._done:
            data = self._raw.read(_CHUNK)
            self._done = not data
            self._out = self._decode(data).encode("utf-8")
        size = min(len(buffer), len(self._out))
        buffer[:size], self._out = self._out[:size], self._out[size:]
        return size

    def _decode(self, data: bytes) -> str:
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            # exc.object is what the decoder saw: the bytes it held back from the last chunk, then this one
            before = codecs.decode(exc.object[: exc.start], self._encoding, "replace")
            offset = self._consumed - len(pending) + exc.start
            line = self._lines + before.count("\n") + 1
            byte = f"byte 0x{exc.object[exc.start]:02x}" if exc.start < len(exc.object) else "a truncated character"
            raise DataError(
                f"invalid {self._encoding} (the declared encoding): {byte} at byte offset {offset}",
                file=self._name, line=line, offset=offset,
            ) from exc  # fmt: skip
        self._consumed += len(data)
        self._lines += text.count("\n")
        return text

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class EndsLine(io.RawIOBase):
    """A stream that ends its last line: pyarrow reads a header with no newline after it as no CSV
    at all, and a final row is the same row with or without its line break."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._next: bytes | None = None  # one read ahead: the newline must come with the last bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size) if self._next is None else self._next
        self._next = self._raw.read(size) if data else b""
        if data and not self._next and data[-1:] not in (b"\n", b"\r"):
            data += b"\n"
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

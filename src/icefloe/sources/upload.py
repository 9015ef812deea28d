"""Uploads: bytes streamed onto a source (the HTTP API), whole and durable or not at all.

An upload writes somewhere no listing or watch looks, hashing as it goes, and `commit(key)`
moves it into place only once its bytes are on stable storage: the caller answers 2xx only
after `commit` returned. `abort` leaves nothing behind on the source.

The default (`SpooledUpload`) spools to a local temporary file and hands it to `Source.put`, so
every backend can take uploads; a backend with a cheaper way (the folder: write beside the
target and rename) gives its own from `Source.upload()`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from icefloe.sources.base import Landed, Source

__all__ = ["FileUpload", "SpooledUpload", "Upload", "fsync_dir"]


class Upload(ABC):
    """One object being streamed in: `write` chunks, then `commit(key)` or `abort()`."""

    def __init__(self) -> None:
        self.size = 0
        self._digest = hashlib.sha256()

    @property
    def content_hash(self) -> str:
        """The SHA-256 of the bytes written so far (the ledger's content hash once committed)."""
        return self._digest.hexdigest()

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        self._write(data)

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, key: str) -> Landed:
        """Put the bytes at `key`, durably: when this returns, a crash cannot lose them."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the bytes away; nothing of them stays on the source."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a no-op after commit


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (a file's own fsync does not cover it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileUpload(Upload):
    """Bytes written to a temporary file, fsynced before `_place` moves or copies them."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, suffix=".part")
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self._done = False

    def _write(self, data: bytes) -> None:
        self._fh.write(data)

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._fh.close()
        self.path.unlink(missing_ok=True)


class SpooledUpload(FileUpload):
    """Any backend: spool to a local file, then `source.put` it (durable once put returns)."""

    def __init__(self, source: Source) -> None:
        super().__init__(Path(tempfile.gettempdir()) / "icefloe-uploads")
        self.source = source

    def commit(self, key: str) -> Landed:
        self._sync()
        try:
            return self.source.put(self.path, key)
        finally:
            self._done = True
            self.path.unlink(missing_ok=True)

"""The source seam: where objects land. Folder now; S3, HTTP upload and queues implement the same."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Landed", "Source"]


@dataclass(frozen=True)
class Landed:
    """A complete object on a source, identified by its key and content hash."""

    source: str
    key: str
    path: Path
    size: int
    content_hash: str
    # what stat() said when the bytes were hashed: if it differs later, these bytes are gone
    stamp: str = ""

    @property
    def uri(self) -> str:
        return self.path.as_uri()


class Source(ABC):
    name: str

    @abstractmethod
    def scan(self) -> Iterator[Path]:
        """Every complete-looking object now present (the reconcile scan at start)."""

    @abstractmethod
    def watch(self, on_change: Callable[[Path, bool], None]) -> Callable[[], None]:
        """Call on_change(path, complete) when an object may have landed; returns a stop function.

        `complete` is True when the backend knows the writer finished (closed or renamed it)."""

    @abstractmethod
    def key_for(self, path: Path) -> str: ...

    @abstractmethod
    def is_stable(self, path: Path, closed: bool = False) -> bool:
        """True once the object is complete (not growing, not a temp name). Never blocks."""

    @abstractmethod
    def describe(self, path: Path) -> Landed: ...

    @abstractmethod
    def stamp(self, path: Path) -> str:
        """A cheap fingerprint of the object's current version (no reading of its bytes)."""

    @abstractmethod
    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        """Land a local file on this source (used by `icefloe ingest`); `progress(bytes)` hears
        how far the copy is."""

    @abstractmethod
    def open_path(self, key: str) -> Path:
        """A local path to read the object from."""

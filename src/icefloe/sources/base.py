"""The source seam: where objects land. Folder now; S3, HTTP upload and queues implement the same.

A source speaks of object references and byte streams, not local paths: an object store has no
path to hand out. `local_path` is the fast path for backends that have one (the folder); readers
fall back to `open()` otherwise (see `sources/spool.py`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from icefloe.sources.upload import Upload

__all__ = ["BELOW_FLOOR", "Landed", "ListPage", "ObjectRef", "Source", "SourceLedger", "check_key", "iter_refs"]


@dataclass(frozen=True)
class ObjectRef:
    """One version of an object as a listing or a head sees it, without reading its bytes.

    `version` changes whenever the bytes may have (an etag, a version id, a stat stamp): it is
    what the ledger records as the object's stamp, so an unchanged object is never hashed again."""

    source: str
    key: str
    size: int
    modified_at: float
    version: str


@dataclass(frozen=True)
class ListPage:
    """Refs in key order; `cursor` is what to pass as `after` for the next page (None: the end)."""

    refs: list[ObjectRef] = field(default_factory=list)
    cursor: str | None = None


@dataclass(frozen=True)
class Landed:
    """A complete object on a source, identified by its key and content hash."""

    source: str
    key: str
    uri: str
    size: int
    content_hash: str
    # the version (ObjectRef.version) the hashed bytes were: if it differs later, these bytes are gone
    stamp: str = ""


def check_key(source: str, key: str) -> str:
    """A key is a relative, '/'-separated name: never absolute, never climbing out with '..'."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or "\0" in key or any(p in ("", ".", "..") for p in parts):
        from icefloe.errors import DataError

        raise DataError(f"key {key!r} escapes source {source!r} (keys are relative names without '..')")
    return key


# a claim's answer for a key at or below the floor of its claims (`SourceLedger.prune`): that
# key was claimed, committed and confirmed upstream, and its claim pruned since
BELOW_FLOOR = "<floor>"


class SourceLedger(Protocol):
    """What a source that must confirm upstream sees of the ledger: a queue acknowledges its
    messages once the events made of them are final, and claims message numbers for a batch so
    two workers never put one message in two events (the claims live under `<source>#claims`)."""

    def states(self, keys: list[str]) -> dict[str, list[str]]:
        """The states of each key's current events (keys with none are absent)."""
        ...

    def stamps(self, keys: list[str]) -> dict[str, str]: ...

    def claim(self, keys: list[str], stamp: str) -> dict[str, str]: ...

    def swap(self, old: str, new: str, *, count: int | None = None) -> bool: ...

    def prune(self, upto: str, *, busy: str) -> str | None:
        """Forget the claims of keys up to `upto` (all confirmed upstream), stopping below one
        still in flight (stamp starting with `busy`); later claims on them answer BELOW_FLOOR."""
        ...


class Source(ABC):
    name: str
    # seconds an object must stay unchanged before it counts as complete (when no close was seen)
    settle: float = 0.0
    # `open_version` pins reads to a version (else readers compare `head` before and after)
    pins_reads: bool = False
    # `open_version` gives a seekable stream of ranged reads: readers read the object in place
    # (engine.fetching) instead of a local copy of it
    seekable_reads: bool = False

    @abstractmethod
    def list(self, after: str | None = None, limit: int = 1000) -> ListPage:
        """Up to `limit` complete-looking objects with keys after `after`, in key order."""

    @abstractmethod
    def head(self, key: str) -> ObjectRef | None:
        """The object's current version, or None if there is none."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Its bytes, as a stream read front to back."""

    def open_version(self, key: str, stamp: str) -> BinaryIO | None:
        """Its bytes as of `stamp` (an `ObjectRef.version`): `ObjectChangedError` if the object
        is another version now or gone. None where `pins_reads` is False (then the caller compares
        `head` before and after instead). An object store pins with one request where the
        comparison costs two more."""
        return None

    def local_path(self, key: str) -> Path | None:
        """A local file holding the object's bytes, where the backend has one (no copy made)."""
        return None

    def pull(self, on_change: Callable[[str, bool], None]) -> int:
        """Bring in what waits upstream now (`run --once`: a queue fetches its messages); returns
        how many it took. A store whose objects are simply there has nothing to pull."""
        return 0

    def confirm(self) -> None:
        """Tell upstream what is done (a queue acknowledges messages whose events are final);
        `run --once` calls it before returning, a watch does it as it goes."""

    def upstream(self) -> dict[str, object]:
        """What `status` shows of the upstream (a queue's consumer lag and unacknowledged
        messages); a store has nothing beyond its objects."""
        return {}

    def problem(self, key: str) -> str | None:
        """Why the object cannot be read, when the source already knows (a queue message that
        did not parse, with its position): the reader never sees it, the event dies with this."""
        return None

    def attach(self, ledger: SourceLedger) -> None:
        """Given the ledger's view by the runtime; only sources that confirm upstream use it."""

    def key_for(self, path: Path) -> str:
        """The key of a local path on this source (`trace ./landing/x.csv`); none without paths."""
        from icefloe.errors import DataError

        raise DataError(f"source {self.name!r} has no local paths ({path})")

    @abstractmethod
    def describe(self, ref: ObjectRef) -> Landed:
        """Hash the object's bytes; `ObjectChangedError` if they changed while being read."""

    @abstractmethod
    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        """Land a local file on this source (used by `icefloe ingest`); `progress(bytes)` hears
        how far the copy is."""

    def upload(self) -> Upload:
        """A stream of bytes to land (the HTTP API): written, then committed at a key, durably.
        The default spools to a local file and `put`s it; backends override it when they can do
        better."""
        from icefloe.sources.upload import SpooledUpload

        return SpooledUpload(self)

    def create(self, key: str, data: bytes) -> Landed:
        """`data` at `key`, durable when this returns, like an upload committed there. For a
        key that is new (the API's records): a backend may write it in place, with no rename."""
        with self.upload() as upload:
            upload.write(data)
            return upload.commit(key)

    @abstractmethod
    def watch(self, on_change: Callable[[str, bool], None]) -> Callable[[], None]:
        """Call on_change(key, complete) when an object may have landed; returns a stop function.

        `complete` is True when the backend knows the writer finished (closed or renamed it)."""

    def is_stable(self, ref: ObjectRef, closed: bool = False) -> bool:
        """True once the object is complete: its writer closed it, or it stopped changing. Never blocks."""
        return closed or time.time() - ref.modified_at >= self.settle


def iter_refs(source: Source, limit: int = 1000) -> Iterator[list[ObjectRef]]:
    """Every page of the source's listing, front to back (a status or reconcile pass)."""
    after: str | None = None
    while True:
        page = source.list(after, limit)
        if page.refs:
            yield page.refs
        if page.cursor is None:
            return
        after = page.cursor

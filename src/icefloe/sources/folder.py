"""A local folder as a source: watchdog notifications plus a paged listing in key order."""

from __future__ import annotations

import bisect
import builtins
import fnmatch
import hashlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from icefloe.config import SourceConfig
from icefloe.errors import DataError, ObjectChangedError
from icefloe.sources.base import Landed, ListPage, ObjectRef, Source, check_key
from icefloe.sources.upload import FileUpload, fsync_dir

__all__ = ["FolderSource"]

log = logging.getLogger("icefloe")

# watchdog's inotify emitter warns when it adds a callback a watch already has, which happens when
# a folder appears while its parent's recursive watch is being set up (an upload's temp folder, a
# `mkdir -p` tree): it then overwrites the callback, which is what is wanted. Under `-W error`
# (the test suite) that warning is raised inside the emitter's thread and ends the watch.
warnings.filterwarnings("ignore", message=r"Callback with id .* already exists for watch", category=RuntimeWarning)


class FolderSource(Source):
    def __init__(self, name: str, config: SourceConfig, root: Path) -> None:
        self.name, self.config = name, config
        self.settle = config.settle
        path = Path(config.path or ".")  # a folder source's path is required at load
        self.root = (path if path.is_absolute() else root / path).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._names = _SortedNames()

    def ignored(self, key: str) -> bool:
        return any(fnmatch.fnmatch(part, pattern) for part in key.split("/") for pattern in self.config.ignore)

    # -- keys and paths ---------------------------------------------------------------------------
    def key_for(self, path: Path) -> str:
        """The key of a path under the root (what a watch notice or `trace ./landing/x.csv` names)."""
        absolute = path if path.is_absolute() else Path.cwd() / path
        resolved = Path(os.path.normpath(absolute))
        if not resolved.is_relative_to(self.root):
            resolved = path.resolve()
        if not resolved.is_relative_to(self.root) or resolved == self.root:
            raise DataError(f"{path} is outside source {self.name!r} ({self.root})")
        return resolved.relative_to(self.root).as_posix()

    def _path(self, key: str) -> Path:
        path = self.root / check_key(self.name, key)
        # a symlink may point anywhere: what it resolves to must still be inside the root
        if not path.resolve().is_relative_to(self.root):
            raise DataError(f"key {key!r} escapes source {self.name!r} (a link out of {self.root})")
        return path

    def local_path(self, key: str) -> Path:
        return self._path(key)

    # -- listing ----------------------------------------------------------------------------------
    def _ref(self, key: str, stat: os.stat_result) -> ObjectRef:
        # ctime moves on every write and cannot be set back (cp -p and rsync -t restore mtime);
        # a rename into place brings a new inode
        version = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
        return ObjectRef(self.name, key, stat.st_size, stat.st_mtime, version)

    def head(self, key: str) -> ObjectRef | None:
        try:
            stat = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._ref(key, stat) if S_ISREG(stat.st_mode) else None

    def list(self, after: str | None = None, limit: int = 1000) -> ListPage:
        refs: list[ObjectRef] = []
        self._walk(self.root, "", after, limit, refs)
        cursor = refs[-1].key if len(refs) >= limit else None
        return ListPage(refs, cursor)

    def _walk(self, directory: Path, prefix: str, after: str | None, limit: int, out: builtins.list[ObjectRef]) -> None:
        """Append refs in key order: a directory's entries sorted by name, a subfolder's name
        sorting as `name/` (so `a.csv` < `a/x.csv` < `a0.csv`, the order of the keys themselves).
        Whole subtrees before `after` are skipped without being read."""
        names = self._names.sorted(directory)
        start = 0
        if after is not None and after.startswith(prefix):
            start = bisect.bisect_left(names, after[len(prefix) :].split("/", 1)[0])
        for name in names[start:]:
            if len(out) >= limit:
                return
            key = prefix + name
            if self.ignored(name.rstrip("/")):  # its parents were checked on the way down
                continue
            if name.endswith("/"):
                # the whole subtree sorts before `after` unless `after` is inside it or before it
                if after is not None and after > key and not after.startswith(key):
                    continue
                self._walk(directory / name[:-1], key, after, limit, out)
                continue
            if after is not None and key <= after:
                continue
            path = directory / name
            try:
                if path.is_symlink() and not path.resolve().is_relative_to(self.root):
                    log.warning("%s:%s links out of %s: not listed", self.name, key, self.root)
                    continue
                stat = path.stat()
            except OSError:  # vanished while listing
                continue
            if S_ISREG(stat.st_mode):
                out.append(self._ref(key, stat))

    # -- bytes ------------------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def describe(self, ref: ObjectRef) -> Landed:
        path = self._path(ref.key)
        before = self.head(ref.key)
        if before is None:
            raise DataError(f"{self.name}:{ref.key} is gone", file=f"{self.name}:{ref.key}")
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        after = self.head(ref.key)
        if after is None or after.version != before.version:
            raise ObjectChangedError(f"{path} changed while it was being hashed")
        return Landed(self.name, ref.key, path.resolve().as_uri(), size, digest.hexdigest(), before.version)

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        local = local.resolve()
        if local.is_relative_to(self.root) and key is None:
            key = local.relative_to(self.root).as_posix()
            ref = self.head(key)
            if ref is None:
                raise DataError(f"{local}: no such file")
            return self.describe(ref)
        key = key or local.name
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # copy under an ignored name, then rename: a watcher never sees a half-written file;
        # hashing while copying reads the bytes once instead of twice
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        size = 0
        with local.open("rb") as src, partial.open("wb") as dst:
            while chunk := src.read(4 << 20):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(size)
        os.replace(partial, target)
        ref = self.head(key)
        assert ref is not None
        return Landed(self.name, key, target.resolve().as_uri(), size, digest.hexdigest(), ref.version)

    def upload(self) -> _FolderUpload:
        return _FolderUpload(self)

    def create(self, key: str, data: bytes) -> Landed:
        # written in place when the key is new: a rename inside the watched tree costs the
        # watch (watchdog pairs every move's two halves in Python, by a linear search) more than
        # the write; a crash midway leaves a file no event names, like an upload's .part. A key
        # that exists (a retried Idempotency-Key's name) is replaced whole, by the upload.
        target = self._path(key)
        made = [d for d in (target.parent, *target.parent.parents) if d.is_relative_to(self.root) and not d.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # as an upload's mkstemp
        except FileExistsError:
            return super().create(key, data)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        for folder in [target.parent, *(d.parent for d in made)]:
            fsync_dir(folder)
        ref = self.head(key)
        assert ref is not None
        return Landed(self.name, key, target.resolve().as_uri(), len(data), hashlib.sha256(data).hexdigest(), ref.version)

    def watch(self, on_change: Callable[[str, bool], None]) -> Callable[[], None]:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
                    return
                target = getattr(event, "dest_path", "") or event.src_path
                try:
                    key = source.key_for(Path(os.fsdecode(target)))
                except DataError:
                    return
                if not source.ignored(key):
                    on_change(key, event.event_type in ("closed", "moved"))

        observer = Observer()
        observer.schedule(Handler(), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()

        def stop() -> None:
            observer.stop()
            observer.join(timeout=5)

        return stop


class _FolderUpload(FileUpload):
    """Written under the root's ignored `.icefloe-uploads/` (same file system, so the rename into
    place is atomic), fsynced, renamed, and the target's folder fsynced: durable at `commit`."""

    def __init__(self, source: FolderSource) -> None:
        super().__init__(source.root / UPLOADS)
        self.source = source

    def commit(self, key: str) -> Landed:
        target = self.source._path(key)
        self._sync()
        # folders made for it are new entries in their parents: those are fsynced too
        made = [d for d in (target.parent, *target.parent.parents) if d.is_relative_to(self.source.root) and not d.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        self._done = True
        for folder in [target.parent, *(d.parent for d in made)]:
            fsync_dir(folder)
        ref = self.source.head(key)
        assert ref is not None
        return Landed(self.source.name, key, target.resolve().as_uri(), self.size, self.content_hash, ref.version)


# uploads in progress; a dot-folder, so the default `ignore` keeps listings and watches off it
UPLOADS = ".icefloe-uploads"


class _SortedNames:
    """Each directory's entry names, sorted (a subfolder as `name/`), kept between the pages of a
    listing: without it every page of a 100,000-file folder would read and sort all of it again.

    A kept list is used only while the directory's mtime is the one it was read at, and only if
    that mtime was already a second old then: a file added within the same timestamp tick as the
    read cannot hide behind an unchanged mtime (the racy-git rule)."""

    KEEP = 64  # directories

    def __init__(self) -> None:
        self._kept: dict[Path, tuple[int, builtins.list[str]]] = {}
        self._lock = threading.Lock()

    def sorted(self, directory: Path) -> builtins.list[str]:
        try:
            mtime = directory.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            kept = self._kept.get(directory)
        if kept is not None and kept[0] == mtime:
            return kept[1]
        try:
            with os.scandir(directory) as it:
                names = sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return []
        if time.time_ns() - mtime > 1_000_000_000:
            with self._lock:
                self._kept.pop(directory, None)
                while len(self._kept) >= self.KEEP:
                    self._kept.pop(next(iter(self._kept)))
                self._kept[directory] = (mtime, names)
        return names

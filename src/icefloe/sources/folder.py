"""A local folder as a source: watchdog notifications plus a reconcile scan."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from icefloe.config import SourceConfig
from icefloe.errors import DataError, ObjectChangedError
from icefloe.sources.base import Landed, Source

__all__ = ["FolderSource"]


class FolderSource(Source):
    def __init__(self, name: str, config: SourceConfig, root: Path) -> None:
        self.name, self.config = name, config
        path = Path(config.path)
        self.root = (path if path.is_absolute() else root / path).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def ignored(self, path: Path) -> bool:
        parts = path.relative_to(self.root).parts if path.is_relative_to(self.root) else (path.name,)
        return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.config.ignore)

    def scan(self) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not self.ignored(Path(dirpath, d)))
            for filename in sorted(filenames):
                path = Path(dirpath, filename)
                if not self.ignored(path):
                    yield path

    def key_for(self, path: Path) -> str:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise DataError(f"{path} is outside source {self.name!r} ({self.root})")
        return resolved.relative_to(self.root).as_posix()

    def open_path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # a key like ../../etc/passwd must never reach outside the source root
        if not path.is_relative_to(self.root):
            raise DataError(f"key {key!r} escapes source {self.name!r}")
        return path

    def is_stable(self, path: Path, closed: bool = False) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        # a writer that closed the file is done; otherwise wait until it stopped changing
        return closed or time.time() - stat.st_mtime >= self.config.settle

    def stamp(self, path: Path) -> str:
        # ctime moves on every write and cannot be set back (cp -p and rsync -t restore mtime);
        # a rename into place brings a new inode
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"

    def describe(self, path: Path) -> Landed:
        before = self.stamp(path)
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        if self.stamp(path) != before:
            raise ObjectChangedError(f"{path} changed while it was being hashed")
        return Landed(self.name, self.key_for(path), path.resolve(), size, digest.hexdigest(), before)

    def put(self, local: Path, key: str | None = None, progress: Callable[[int], None] | None = None) -> Landed:
        local = local.resolve()
        if local.is_relative_to(self.root) and key is None:
            return self.describe(local)
        target = self.open_path(key or local.name)
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
        return Landed(self.name, self.key_for(target), target.resolve(), size, digest.hexdigest(), self.stamp(target))

    def watch(self, on_change: Callable[[Path, bool], None]) -> Callable[[], None]:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
                    return
                target = getattr(event, "dest_path", "") or event.src_path
                path = Path(os.fsdecode(target))
                if not source.ignored(path):
                    on_change(path, event.event_type in ("closed", "moved"))

        observer = Observer()
        observer.schedule(Handler(), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()

        def stop() -> None:
            observer.stop()
            observer.join(timeout=5)

        return stop

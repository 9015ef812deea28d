"""A local file for readers that need one (every reader seeks or mmaps): the backend's own path
when it has one, else the object's stream copied to a temporary file that goes when done."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from icefloe.errors import DataError
from icefloe.sources.base import Source, check_key

__all__ = ["readable_path"]


@contextmanager
def readable_path(source: Source, key: str, stamp: str | None = None) -> Iterator[Path]:
    """`stamp`: copy the bytes of that version only (`Source.open_version`), where the backend can."""
    problem = source.problem(key)
    if problem:
        raise DataError(problem)
    local = source.local_path(key)
    if local is not None:
        yield local
        return
    name = check_key(source.name, key).rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="icefloe-spool-") as tmp:
        # the object's own name, so readers that pick a format by extension (.csv.gz) still can
        target = Path(tmp) / name
        pinned = source.open_version(key, stamp) if stamp else None
        with pinned or source.open(key) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        yield target

"""Small objects of a store are fetched ahead on a bounded pool: never more than THREADS GETs at
once, never more than BUDGET bytes held, and each event gets exactly its own object's bytes."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest

from icefloe.engine import fetching
from icefloe.engine.fetching import Fetcher
from icefloe.ledger.base import Event


class _Store:
    name = "s"
    pins_reads = True
    seekable_reads = True

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.opened: list[str] = []

    def local_path(self, key: str) -> None:
        return None

    def open_version(self, key: str, stamp: str) -> io.BytesIO:
        with self.lock:
            self.opened.append(key)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        size = int(stamp.rpartition(":")[2])
        return io.BytesIO((key.encode() * size)[:size])


def _event(key: str, size: int) -> Event:
    return Event(id=key, source="s", key=key, uri=f"s3://b/{key}", content_hash="h", size=size * len(key), pipeline="p",
                 state="running", stamp=f"etag:{size * len(key)}")  # fmt: skip


def test_fetches_ahead_within_the_thread_and_byte_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetching, "BUDGET", 30 * 10)
    store: Any = _Store()
    events = [_event(f"k{i:02d}", 10) for i in range(40)]  # 30 bytes each: 10 fit the budget
    fetcher = Fetcher()
    try:
        fetcher.ahead([(ev, store) for ev in events])
        for ev in events[:10]:
            with fetcher.readable(store, ev, True) as got:
                assert got.open().read() == ev.key.encode() * 10 and got.size == 30  # type: ignore[union-attr]
        assert store.most <= fetching.THREADS and store.most > 1
        assert sorted(store.opened) == [ev.key for ev in events[:10]]  # the rest waited for their turn
    finally:
        fetcher.close()

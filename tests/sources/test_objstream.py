"""The seekable stream over ranged reads: exactly the object's bytes across part boundaries, at
most `window` fetches in flight, and random access that fetches only what it asks for."""

from __future__ import annotations

import io
import random
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icefloe.errors import ObjectChangedError, StorageUnavailableError
from icefloe.sources.objstream import ObjectStream


class Store:
    """One object served by ranges, counting what was asked and how many ran at once."""

    def __init__(self, data: bytes, delay: float = 0.0) -> None:
        self.data, self.delay = data, delay
        self.calls: list[tuple[int, int]] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def fetch(self, start: int, end: int) -> bytes:
        with self.lock:
            self.calls.append((start, end))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self.data[start:end]
        finally:
            with self.lock:
                self.running -= 1

    def stream(self, start: int) -> io.RawIOBase:
        self.calls.append((start, len(self.data)))
        return io.BytesIO(self.data[start:])  # type: ignore[return-value]


def _open(store: Store, part: int, window: int, first: int = 0, buffered: bool = True) -> io.IOBase:
    raw = ObjectStream("s3://b/k", len(store.data), store.fetch, store.stream, part=part, window=window, first=store.data[:first])
    return io.BufferedReader(raw, buffer_size=7) if buffered else raw


@pytest.mark.parametrize("size", [0, 1, 2, 3, 17, 64, 1000])
@pytest.mark.parametrize("part", [1, 3, 16, 5000])
@pytest.mark.parametrize("window", [1, 2, 4])
def test_reads_exactly_the_bytes_across_part_boundaries(size: int, part: int, window: int) -> None:
    data = random.Random(size * 31 + part).randbytes(size)
    for first in sorted({0, min(part, size)}):
        store = Store(data)
        raw = ObjectStream("s3://b/k", size, store.fetch, None, part=part, window=window, first=data[:first])
        with io.BufferedReader(raw, buffer_size=5) as stream:
            got = b""
            rng = random.Random(size)
            while chunk := stream.read(rng.choice([1, 2, 7, 100])):
                got += chunk
        assert got == data
        assert all(end - start <= part for start, end in store.calls)
        covered = sorted(store.calls)
        assert sum(end - start for start, end in covered) == size - first  # each byte fetched once


def test_window_one_with_a_stream_reads_one_streamed_request() -> None:
    data = bytes(range(256)) * 40
    store = Store(data)
    with _open(store, part=100, window=1) as stream:
        assert stream.read() == data
    assert store.calls == [(0, len(data))]


def test_never_more_than_window_fetches_in_flight_or_held() -> None:
    store = Store(bytes(4000), delay=0.01)
    raw = ObjectStream("s3://b/k", 4000, store.fetch, None, part=100, window=3)
    with io.BufferedReader(raw, buffer_size=10) as stream:
        while stream.read(10):
            assert len(raw._ahead) + (1 if raw._buf else 0) <= 3
    assert store.most == 3  # it did overlap, and no more than the window
    assert len(store.calls) == 40


def test_a_seek_drops_the_read_ahead_and_random_reads_fetch_what_they_ask() -> None:
    data = random.Random(1).randbytes(3 << 20)
    store = Store(data)
    with _open(store, part=1 << 20, window=4, buffered=False) as raw:
        raw.seek(-8, io.SEEK_END)
        assert raw.read(8) == data[-8:]
        raw.seek(1000)
        assert raw.read(10) == data[1000:1010]
        assert len(store.calls) == 2
        assert all(end - start <= 256 << 10 for start, end in store.calls)
        raw.seek(0)
        assert raw.read(100) == data[:100]
    # the whole file front to back after the random reads still gives every byte
    with _open(store, part=1 << 20, window=4) as stream:
        stream.seek(5)
        stream.read(3)
        stream.seek(0)
        assert stream.read() == data


def test_parquet_reads_through_the_stream() -> None:
    table = pa.table({"a": list(range(50_000)), "b": [str(i) for i in range(50_000)]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=10_000)
    store = Store(sink.getvalue())
    with _open(store, part=64 << 10, window=2) as stream:
        assert pq.ParquetFile(stream).read().equals(table)


def test_a_short_part_is_a_transient_error() -> None:
    store = Store(bytes(100))
    raw = ObjectStream("s3://b/k", 200, store.fetch, None, part=50, window=2)  # says 200, has 100
    with io.BufferedReader(raw) as stream, pytest.raises(StorageUnavailableError, match="s3://b/k: bytes 100-149"):
        stream.read()


def test_the_fetch_error_reaches_the_reader() -> None:
    def fetch(start: int, end: int) -> bytes:
        if start >= 20:
            raise ObjectChangedError("s3://b/k changed while it was being read")
        return bytes(end - start)

    raw = ObjectStream("s3://b/k", 100, fetch, None, part=10, window=2)
    with io.BufferedReader(raw) as stream:
        assert stream.read(20) == bytes(20)
        with pytest.raises(ObjectChangedError, match="s3://b/k changed"):
            stream.read()

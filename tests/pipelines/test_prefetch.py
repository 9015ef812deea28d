"""The read-ahead thread: same batches, same order, same errors at the same point, and it stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from icefloe.errors import DataError
from icefloe.pipelines.readers import base, read_batches
from icefloe.pipelines.readers.prefetch import Prefetched
from tests.helpers import csv_file


def _numbers(n: int, log: list[str], fail_at: int | None = None) -> Iterator[int]:
    try:
        for i in range(n):
            if i == fail_at:
                raise DataError("bad row", file="f.csv", line=i + 2)
            log.append(threading.current_thread().name)
            yield i
    finally:
        log.append("closed")


def test_items_come_in_order_from_another_thread() -> None:
    log: list[str] = []
    assert list(Prefetched(_numbers(50, log), depth=2)) == list(range(50))
    assert set(log[:-1]) == {"icefloe-read"} and log[-1] == "closed"


def test_an_error_comes_after_the_items_before_it() -> None:
    log: list[str] = []
    items = Prefetched(_numbers(10, log, fail_at=7))
    got = [next(items) for _ in range(7)]
    with pytest.raises(DataError) as err:
        next(items)
    assert got == list(range(7))
    assert err.value.line == 9 and "f.csv" in str(err.value)


def test_close_stops_the_thread_and_closes_the_source() -> None:
    log: list[str] = []
    items = Prefetched(_numbers(10_000, log), depth=2)
    assert next(items) == 0
    items.close()
    assert log[-1] == "closed"
    assert len(log) < 10  # stopped a few items ahead, not at the end of the source
    with pytest.raises(StopIteration):
        next(items)


def test_building_one_reads_nothing() -> None:
    log: list[str] = []
    items = Prefetched(_numbers(3, log))
    assert log == []
    items.close()
    assert log == []  # a generator never started has nothing to clean up


@pytest.fixture
def read_ahead_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "PREFETCH_MIN_BYTES", 0)  # small test files take the big-file path


def test_csv_batches_are_parsed_on_the_read_thread(tmp_path: Path, read_ahead_always: None) -> None:
    path = csv_file(tmp_path / "a.csv", "id,v", [f"{i},x{i}" for i in range(3000)])
    batches = read_batches(path, schema={"id": "long", "v": "string"}, batch_rows=1000)
    assert isinstance(batches, Prefetched)
    assert [b.num_rows for b in batches] == [1000, 1000, 1000]


def test_a_small_file_is_read_without_a_thread(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "a.csv", "id,v", [f"{i},x{i}" for i in range(3000)])
    batches = read_batches(path, schema={"id": "long", "v": "string"}, batch_rows=1000)
    assert not isinstance(batches, Prefetched)
    assert [b.num_rows for b in batches] == [1000, 1000, 1000]


def test_a_bad_csv_row_still_names_its_line_after_good_batches(tmp_path: Path, read_ahead_always: None) -> None:
    rows = [f"{i},x{i}" for i in range(5000)] + ["oops,x"] + [f"{i},y" for i in range(100)]
    path = csv_file(tmp_path / "a.csv", "id,v", rows)
    seen = 0
    with pytest.raises(DataError) as err:
        for batch in read_batches(path, schema={"id": "long", "v": "string"}, batch_rows=500):
            seen += batch.num_rows
    assert err.value.line == 5002 and "a.csv" in str(err.value)
    assert seen <= 5000


def test_a_bad_ndjson_line_still_names_its_line(tmp_path: Path, read_ahead_always: None) -> None:
    lines = [f'{{"id": {i}}}' for i in range(3000)] + ['{"id": "nope"}']
    path = tmp_path / "a.ndjson"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        list(read_batches(path, schema={"id": "long"}, batch_rows=500))
    assert err.value.line == 3001

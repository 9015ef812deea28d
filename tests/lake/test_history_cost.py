"""The exactly-once check of one commit costs the same however many events the history holds.

A folder of 100,000 landed files committed in a few bulk snapshots (bench 9) must not make each
later one-file commit copy or re-read those 100,000 ids. Counted in memory allocated and summaries
read, never time."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Summary

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, committed_event_ids, open_catalog
from icefloe.lake.events import EVENTS_FILE_PROPERTY, EVENTS_PROPERTY

BULK = 20_000


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _batch(prefix: str, count: int) -> list[Staged]:
    ids = [f"{prefix}{n}" for n in range(count)]
    data = pa.table({"id": pa.array(range(count), pa.int64()), "_icefloe_event": ids, "_icefloe_source": [f"src:{i}" for i in ids]})
    # one event carries the rows, the others commit none: the batch is about its ids, not its rows
    return [Staged(ids[0], f"src:{ids[0]}", data)] + [Staged(i, f"src:{i}", data.slice(0, 0)) for i in ids[1:]]


def _summary_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = Summary.__getitem__

    def counting(self: Summary, key: str) -> object:
        if key in (EVENTS_PROPERTY, EVENTS_FILE_PROPERTY):
            reads.append(key)
        return original(self, key)

    monkeypatch.setattr(Summary, "__getitem__", counting)
    return reads


def test_the_check_after_a_bulk_commit_allocates_nothing_like_the_history(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    bulk, _ = writer.commit(_batch("bulk", BULK))
    assert len(committed_event_ids(catalog.load_table("s.t"))) == BULK
    one, done = writer.commit(_batch("one", 1))
    assert done == ["one0"]
    table = catalog.load_table("s.t")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        history = committed_event_ids(table)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # a copy of 20,000 ids is over a megabyte; the one new snapshot's id is a few hundred bytes
    assert peak < 64 * 1024, peak
    assert history["one0"] == one and history["bulk0"] == bulk and history[f"bulk{BULK - 1}"] == bulk
    assert "never" not in history and len(history) == BULK + 1


def test_an_expiry_does_not_make_the_next_check_read_the_retained_snapshots_again(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit(_batch("bulk", 500))  # an events file, kept
    for n in range(6):
        writer.commit(_batch(f"e{n}-", 1))
    assert len(committed_event_ids(catalog.load_table("s.t"))) == 506
    table = catalog.load_table("s.t")
    oldest_small = table.metadata.snapshots[1].snapshot_id
    table.maintenance.expire_snapshots().by_ids([oldest_small]).commit()
    reads = _summary_reads(monkeypatch)
    writer.commit(_batch("late", 1))  # its check reads the history the expiry left
    history = committed_event_ids(catalog.load_table("s.t"))
    # only the snapshot the commit added: neither the kept ones nor the bulk one's events file again
    assert len(reads) <= 2, reads
    monkeypatch.undo()
    assert set(history) == {f"bulk{n}" for n in range(500)} | {f"e{n}-0" for n in range(1, 6)} | {"late0"}
    assert "e0-0" not in history  # expired: the ledger answers for it now, not the table


def test_views_of_earlier_metadata_still_answer_for_their_snapshots_after_the_index_is_rebuilt(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    bulk, _ = writer.commit(_batch("bulk", 3000))
    writer.commit(_batch("a", 1))
    before = catalog.load_table("s.t")
    earlier = committed_event_ids(before)
    before.maintenance.expire_snapshots().by_ids([bulk]).commit()
    writer.commit(_batch("b", 1))
    later = committed_event_ids(catalog.load_table("s.t"))
    # 3,000 ids no snapshot retains any more: more than the slack a history keeps for them
    assert set(later) == {"a0", "b0"} and "bulk7" not in later
    assert earlier["bulk7"] == bulk and "b0" not in earlier and len(earlier) == 3001
    # and the rebuilt index goes on from there
    writer.commit(_batch("c", 1))
    assert set(committed_event_ids(catalog.load_table("s.t"))) == {"a0", "b0", "c0"}

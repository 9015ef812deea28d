"""What one commit reads and copies does not grow with the commits before it.

Each check counts work (metadata copies, snapshot summaries read), never time: the timings are
in bench/flat.py and the README."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError
from pyiceberg.catalog import Catalog
from pyiceberg.table.metadata import TableMetadataV2
from pyiceberg.table.snapshots import Summary

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, committed_event_ids, open_catalog
from icefloe.lake.compat import transaction
from icefloe.lake.writer import EVENTS_PROPERTY


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, ids: list[int]) -> Staged:
    n = len(ids)
    return Staged(event, f"src:{event}", pa.table({"id": ids, "_icefloe_event": [event] * n, "_icefloe_source": [f"src:{event}"] * n}))


def _history_by_walking(catalog: Catalog, name: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    for snapshot in catalog.load_table(name).metadata.snapshots:
        value = snapshot.summary[EVENTS_PROPERTY] if snapshot.summary else None
        ids.update(dict.fromkeys((value or "").split(",") if value else [], snapshot.snapshot_id))
    return ids


def _deep_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = TableMetadataV2.model_copy

    def counting(self: TableMetadataV2, *, update: object = None, deep: bool = False) -> TableMetadataV2:
        if deep:
            calls.append(len(self.snapshots))
        return original(self, update=update, deep=deep)  # type: ignore[arg-type]

    monkeypatch.setattr(TableMetadataV2, "model_copy", counting)
    return calls


def test_an_append_deep_copies_the_table_metadata_a_few_times_not_once_per_read(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    for n in range(12):
        writer.commit([_staged(f"e{n}", [n])])
    copies = _deep_copies(monkeypatch)
    writer.commit([_staged("late", [99])])
    # the transaction's two states (before and after staging the snapshot) and the catalog's
    # own apply; pyiceberg alone copies on each of the ~16 reads of `Transaction.table_metadata`
    assert len(copies) <= 3, copies
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [*range(12), 99]


def test_a_transaction_sees_its_staged_updates_and_the_refreshed_table(catalog: Catalog) -> None:
    TableWriter(catalog, WriteConfig(table="s.t")).commit([_staged("e1", [1])])
    table = catalog.load_table("s.t")
    tx = transaction(table)
    before = tx.table_metadata
    assert tx.table_metadata is before  # the same state: the same object
    with pytest.raises(ValidationError):  # frozen: sharing it with the table cannot change the table
        before.properties = {"owner": "flat"}  # type: ignore[misc]
    tx.set_properties(owner="flat")
    assert tx.table_metadata.properties["owner"] == "flat" and "owner" not in before.properties
    assert "owner" not in table.metadata.properties  # staged, not applied to the table
    tx.commit_transaction()
    TableWriter(catalog, WriteConfig(table="s.t")).commit([_staged("e2", [2])])
    table.refresh()
    assert tx.table_metadata.current_snapshot_id == table.metadata.current_snapshot_id


def test_committed_event_ids_reads_only_the_summaries_of_new_snapshots(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    for n in range(10):
        writer.commit([_staged(f"e{n}", [n])])
    assert dict(committed_event_ids(catalog.load_table("s.t"))) == _history_by_walking(catalog, "s.t")
    writer.commit([_staged("new", [10])])
    reads: list[str] = []
    original = Summary.__getitem__

    def counting(self: Summary, key: str) -> object:
        if key == EVENTS_PROPERTY:
            reads.append(key)
        return original(self, key)

    monkeypatch.setattr(Summary, "__getitem__", counting)
    table = catalog.load_table("s.t")
    history = committed_event_ids(table)
    assert len(reads) == 1  # the one snapshot added since, not all eleven
    monkeypatch.undo()
    assert dict(history) == _history_by_walking(catalog, "s.t") and set(history) == {*(f"e{n}" for n in range(10)), "new"}
    assert committed_event_ids(table) is history  # the same metadata file: nothing read again


def test_committed_event_ids_drops_the_events_of_expired_snapshots(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    for n in range(4):
        writer.commit([_staged(f"e{n}", [n])])
    table = catalog.load_table("s.t")
    assert set(committed_event_ids(table)) == {"e0", "e1", "e2", "e3"}
    oldest = [s.snapshot_id for s in table.metadata.snapshots[:2]]
    table.maintenance.expire_snapshots().by_ids(oldest).commit()
    writer.commit([_staged("e4", [4])])
    history = committed_event_ids(catalog.load_table("s.t"))
    assert dict(history) == _history_by_walking(catalog, "s.t")
    assert set(history) == {"e2", "e3", "e4"}


def test_committed_event_ids_cannot_be_changed_by_a_caller(catalog: Catalog) -> None:
    TableWriter(catalog, WriteConfig(table="s.t")).commit([_staged("e1", [1])])
    history = committed_event_ids(catalog.load_table("s.t"))
    with pytest.raises(TypeError):
        history["forged"] = 1  # type: ignore[index]
    assert set(committed_event_ids(catalog.load_table("s.t"))) == {"e1"}

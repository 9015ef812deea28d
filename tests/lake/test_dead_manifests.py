"""Commits leave out the parent's manifests that list no live file (only entries an earlier
snapshot deleted), whatever the write mode; history and time travel read as before."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, open_catalog
from icefloe.lake.maintain import MaintenancePolicy, maintain


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, ids: list[int], value: int, source: str | None = None) -> Staged:
    n = len(ids)
    ref = source or f"src:{event}"
    data = pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array([value] * n, pa.int64()),
                     "_icefloe_event": [event] * n, "_icefloe_source": [ref] * n})  # fmt: skip
    return Staged(event, ref, data)


def _carried_dead(table: Table) -> int:
    """Manifests of the current snapshot that list no live file and were written before it."""
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return sum(
        1 for m in snapshot.manifests(table.io)
        if not m.has_added_files() and not m.has_existing_files() and m.added_snapshot_id != snapshot.snapshot_id
    )  # fmt: skip


def _rows(table: Table, snapshot_id: int | None = None) -> list[tuple[int, int]]:
    data = table.scan(snapshot_id=snapshot_id).to_arrow()
    return sorted(zip(data["id"].to_pylist(), data["v"].to_pylist(), strict=True))


def test_upserts_do_not_carry_earlier_delete_only_manifests(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.u", mode="upsert", key=["id"]))
    writer.commit([_staged("e0", [1, 2, 3], 0)])
    for n in range(1, 5):  # each rewrites the one data file: one delete-only manifest per commit
        writer.commit([_staged(f"e{n}", [1], n)])
    table = catalog.load_table("s.u")
    assert _carried_dead(table) == 0
    assert _rows(table) == [(1, 4), (2, 0), (3, 0)]
    second = table.metadata.snapshots[2].snapshot_id
    assert _rows(table, second) == [(1, 2), (2, 0), (3, 0)]  # time travel reads the old snapshot's manifests


def test_replace_source_and_overwrite_do_not_carry_them_either(catalog: Catalog) -> None:
    replace = TableWriter(catalog, WriteConfig(table="s.r", mode="replace_source"))
    overwrite = TableWriter(catalog, WriteConfig(table="s.o", mode="overwrite"))
    for n in range(4):
        replace.commit([_staged(f"r{n}", [1, 2], n, source="src:a.csv")])
        overwrite.commit([_staged(f"o{n}", [1, 2], n)])
    for name in ("s.r", "s.o"):
        table = catalog.load_table(name)
        assert _carried_dead(table) == 0, name
        assert _rows(table) == [(1, 3), (2, 3)], name


def test_compaction_does_not_carry_them(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.c", mode="upsert", key=["id"]))
    for n in range(4):
        writer.commit([_staged(f"e{n}", [n * 10, n * 10 + 1], n)])
    writer.commit([_staged("u", [0], 9)])  # a delete-only manifest in the parent of the compaction
    report = maintain(catalog, "s.c", MaintenancePolicy(compact_min_files=2), actions=("compact",))
    assert report.files_compacted == 5
    table = catalog.load_table("s.c")
    assert _carried_dead(table) == 0
    assert _rows(table) == [(0, 9), (1, 0), (10, 1), (11, 1), (20, 2), (21, 2), (30, 3), (31, 3)]

"""No deep copy of the metadata per commit, and no metadata file parsed twice (lake.compat LeanSqlCatalog)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.serializers import FromInputFile
from pyiceberg.table.metadata import TableMetadataV2

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, committed_event_ids, open_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, ids: list[int]) -> Staged:
    data = pa.table({"id": pa.array(ids, pa.int64()), "_icefloe_event": [event] * len(ids), "_icefloe_source": [f"src:{event}"] * len(ids)})
    return Staged(event, f"src:{event}", data)


def _count(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = {"deep_copies": 0, "parses": 0}
    copy, parse = TableMetadataV2.model_copy, FromInputFile.table_metadata

    def counting_copy(self: TableMetadataV2, *, update: object = None, deep: bool = False) -> TableMetadataV2:
        counts["deep_copies"] += deep
        return copy(self, update=update, deep=deep)  # type: ignore[arg-type]

    def counting_parse(*args: object, **kwargs: object) -> object:
        counts["parses"] += 1
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TableMetadataV2, "model_copy", counting_copy)
    monkeypatch.setattr(FromInputFile, "table_metadata", staticmethod(counting_parse))
    return counts


def test_a_commit_deep_copies_no_metadata_and_parses_no_file_it_already_knows(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    for n in range(5):
        writer.commit([_staged(f"e{n}", [n])])
    counts = _count(monkeypatch)
    for n in range(5, 10):
        writer.commit([_staged(f"e{n}", [n])])  # each loads the table, stages, commits
    # pyiceberg alone: three deep copies and two parses of the same file per commit; the catalog's
    # closing copy was the last, and its cost grew with the snapshots the table keeps
    assert counts == {"deep_copies": 0, "parses": 0}
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == list(range(10))


def test_a_commit_by_another_catalog_is_read_from_its_file(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (here: another catalog object) moved the table on: its file is parsed,
    and the writer sees the other's events."""
    ours = TableWriter(catalog, WriteConfig(table="s.t"))
    ours.commit([_staged("e1", [1])])
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table="s.t"))
    other.commit([_staged("e2", [2])])
    counts = _count(monkeypatch)
    table = ours.load()
    assert table is not None and counts["parses"] == 1
    assert set(committed_event_ids(table)) == {"e1", "e2"}
    _, done = ours.commit([_staged("e2", [2]), _staged("e3", [3])])
    assert done == ["e3"]
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [1, 2, 3]

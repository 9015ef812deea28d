"""A commit batch is one snapshot: what it replaces leaves in the snapshot its rows arrive in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from icefloe import Project
from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, open_catalog
from tests.helpers import csv_file, make_project

CSV = {"format": "csv", "schema": {"id": "long", "v": "string"}}
SPILLING = {"read": {**CSV, "batch_rows": 500}, "batch": {"spill_bytes": "8KB"}}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, source: str, ids: list[int], landed_at: float = 0.0, *, replaces: bool = False) -> Staged:
    data = pa.table({"id": pa.array(ids, pa.int64()), "_icefloe_event": [event] * len(ids), "_icefloe_source": [source] * len(ids)})
    return Staged(event, source, data, landed_at, replaces_source=True) if replaces else Staged(event, source, data, landed_at)


def _operations(table: Table) -> list[str]:
    return [s.summary.operation.value for s in table.metadata.snapshots]  # type: ignore[union-attr]


def _ids_by_source(table: Table, snapshot_id: int) -> dict[str, list[int]]:
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    found: dict[str, list[int]] = {}
    for row in rows:
        found.setdefault(row["_icefloe_source"], []).append(row["id"])
    return {source: sorted(ids) for source, ids in found.items()}


def _every_state(table: Table) -> list[dict[str, list[int]]]:
    return [_ids_by_source(table, s.snapshot_id) for s in table.metadata.snapshots]


def _object_versions(table: Table, snapshot_id: int, column: str) -> dict[str, set[Any]]:
    """The distinct values of `column` per source object in one snapshot."""
    found: dict[str, set[Any]] = {}
    for row in table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist():
        found.setdefault(row["_icefloe_source"], set()).add(row[column])
    return found


def test_relanding_in_replace_source_is_one_overwrite_snapshot_and_no_snapshot_lacks_the_object(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": {"read": CSV, "write": {"table": "s.t", "mode": "replace_source"}}}))
    project.ingest([csv_file(tmp_path / "a.csv", "id,v", ["1,a1", "2,a1"])])
    project.ingest([csv_file(tmp_path / "b.csv", "id,v", ["10,b1"])])
    project.ingest([csv_file(tmp_path / "a.csv", "id,v", ["5,a2"])])
    history = project.history("s.t")
    assert [h["operation"] for h in history] == ["append", "append", "overwrite"]
    assert all(len(h["events"]) == 1 for h in history)  # one snapshot per landing
    assert project.sql("select id, v from s.t order by id").to_pylist() == [{"id": 5, "v": "a2"}, {"id": 10, "v": "b1"}]
    table = project.catalog.load_table("s.t")
    # every retained snapshot holds each object landed so far, in exactly one version
    states = [_object_versions(table, h["snapshot_id"], "v") for h in history]
    assert states == [
        {"landing:a.csv": {"a1"}},
        {"landing:a.csv": {"a1"}, "landing:b.csv": {"b1"}},
        {"landing:a.csv": {"a2"}, "landing:b.csv": {"b1"}},
    ]
    for h, state in zip(history, states, strict=True):  # what `--as-of` shows, as any engine's time travel
        rows = project.sql("select count(*) as n, count(distinct v) as d from s.t", as_of=h["snapshot_id"]).to_pylist()
        assert rows == [{"n": h["total_rows"], "d": len(state)}]


def test_spilled_relanding_on_a_partitioned_table_is_one_snapshot(tmp_path: Path) -> None:
    pipeline = {**SPILLING, "write": {"table": "s.t", "mode": "replace_source", "partition": ["bucket(4, id)"]}}
    # no maintenance: the partitioned writes' small files made a run due, whose compaction would
    # be one more snapshot in the history (and it started a maintenance process for nothing)
    project = Project(make_project(tmp_path / "p", {"p": pipeline}, maintenance={"enabled": False}))
    project.ingest([csv_file(tmp_path / "big.csv", "id,v", [f"{i},one" for i in range(5_000)])])
    project.ingest([csv_file(tmp_path / "big.csv", "id,v", [f"{i},two" for i in range(3_000)])])
    history = project.history("s.t")
    assert [(h["operation"], h["total_rows"]) for h in history] == [("append", 5_000), ("overwrite", 3_000)]
    table = project.catalog.load_table("s.t")
    assert [list(_object_versions(table, h["snapshot_id"], "v").values()) for h in history] == [[{"one"}], [{"two"}]]


@pytest.mark.parametrize("partition", [[], ["bucket(4, id)"]])
def test_replace_source_at_the_writer_names_each_snapshot_by_what_it_did(catalog: Catalog, partition: list[str]) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="replace_source", partition=partition))
    writer.commit([_staged("e1", "src:a", [1, 2]), _staged("e2", "src:b", [10])])
    writer.commit([_staged("e3", "src:a", [5])])
    writer.commit([_staged("e4", "src:c", [7])])  # an object landing for the first time deletes nothing
    writer.commit([_staged("e5", "src:b", [])])  # an emptied object only deletes
    table = catalog.load_table("s.t")
    assert _operations(table) == ["append", "overwrite", "append", "delete"]
    assert _every_state(table) == [
        {"src:a": [1, 2], "src:b": [10]},
        {"src:a": [5], "src:b": [10]},
        {"src:a": [5], "src:b": [10], "src:c": [7]},
        {"src:a": [5], "src:c": [7]},
    ]


def test_prewritten_files_replace_the_old_version_in_the_same_snapshot(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="replace_source", partition=["bucket(4, id)"]))

    def spilled(event: str, ids: list[int]) -> Staged:
        stream = writer.stream()
        stream.write(_staged(event, "src:a", ids).data)
        return Staged(event, "src:a", _staged(event, "src:a", []).data, 0.0, stream.close())

    writer.commit([spilled("e1", list(range(20)))])
    writer.commit([spilled("e2", [100, 101])])
    table = catalog.load_table("s.t")
    assert _operations(table) == ["append", "overwrite"]
    assert _every_state(table) == [{"src:a": list(range(20))}, {"src:a": [100, 101]}]


def test_append_mode_replaces_only_the_objects_flagged_so(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit([_staged("e1", "src:a", [1, 2]), _staged("e2", "src:b", [10])])
    writer.commit([_staged("e3", "src:a", [5], replaces=True), _staged("e4", "src:b", [11])])
    # in one batch: the flagged version of c replaces the one landed before it, not the one after
    writer.commit(
        [_staged("e5", "src:c", [7], 1.0), _staged("e6", "src:c", [8], 2.0, replaces=True), _staged("e7", "src:c", [9], 3.0)]
    )
    table = catalog.load_table("s.t")
    assert _operations(table) == ["append", "overwrite", "append"]
    assert _every_state(table) == [
        {"src:a": [1, 2], "src:b": [10]},
        {"src:a": [5], "src:b": [10, 11]},
        {"src:a": [5], "src:b": [10, 11], "src:c": [8, 9]},
    ]
    assert len(table.metadata.snapshots[-1].summary["icefloe.events"].split(",")) == 3  # type: ignore[index,union-attr]


def test_overwrite_is_one_snapshot_too(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="overwrite"))
    writer.commit([_staged("e1", "src:a", [1, 2])])
    writer.commit([_staged("e2", "src:b", [7])])
    table = catalog.load_table("s.t")
    assert _operations(table) == ["append", "overwrite"]
    assert _every_state(table) == [{"src:a": [1, 2]}, {"src:b": [7]}]

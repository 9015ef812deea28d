"""Spilled data files skip the dictionary for mostly-distinct columns, and read back the same."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from icefloe import Project
from icefloe.lake.parquet import plain_columns
from tests.helpers import csv_file, make_project

BIG = {
    "read": {"format": "csv", "schema": {"id": "long", "kind": "string", "note": "string"}, "batch_rows": 5000},
    "batch": {"spill_bytes": "64KB"},
    "write": {"table": "s.t"},
}


def test_plain_columns_are_the_mostly_distinct_ones_whose_dictionary_would_overflow() -> None:
    n = 20_000
    chunk = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "kind": pa.array([("a", "b", "c")[i % 3] for i in range(n)], pa.large_string()),
        "note": pa.array([f"note number {i}" for i in range(n)], pa.large_string()),
        "flag": pa.array([i % 2 == 0 for i in range(n)]),
    })  # fmt: skip
    assert plain_columns(chunk, dict_limit=1 << 20, row_group_rows=1 << 20) == ["id", "note"]
    # a row group too small to overflow the dictionary keeps it
    assert plain_columns(chunk, dict_limit=1 << 20, row_group_rows=1000) == []
    assert plain_columns(chunk.slice(0, 100), dict_limit=1, row_group_rows=1 << 20) == []  # too few rows to judge


def test_a_spilled_file_writes_unique_columns_plain_and_keeps_the_dictionary_elsewhere(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"p": BIG})
    rows = [f"{i},{('new', 'paid')[i % 2]},{'x' * 30}{i}" for i in range(60_000)]
    project = Project(root)
    (event,) = project.ingest([csv_file(tmp_path / "big.csv", "id,kind,note", rows)])
    assert event.state == "committed"
    (path,) = (root / "warehouse").rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata
    by_name = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert not by_name["id"].has_dictionary_page and not by_name["note"].has_dictionary_page
    assert by_name["kind"].has_dictionary_page and by_name["_icefloe_event"].has_dictionary_page
    got = project.sql("select count(*) as n, sum(id) as s, count(distinct note) as d, min(kind) as k from s.t").to_pylist()
    assert got == [{"n": 60_000, "s": sum(range(60_000)), "d": 60_000, "k": "new"}]


def test_an_upsert_writes_its_rewritten_and_new_files_like_a_spilled_file(tmp_path: Path) -> None:
    from icefloe.config import WriteConfig
    from icefloe.lake import Staged, TableWriter, open_catalog

    catalog = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="upsert", key=["id"]))

    def rows(ids: range, tag: str) -> pa.Table:
        return pa.table({
            "id": pa.array(ids, pa.int64()),
            "kind": pa.array([("new", "paid")[i % 2] for i in ids], pa.large_string()),
            "note": pa.array([f"{tag}{'x' * 30}{i}" for i in ids], pa.large_string()),
        })  # fmt: skip

    writer.commit([Staged("e1", "landing:a", rows(range(60_000), "a"))])
    first = {f.file.file_path for f in catalog.load_table("s.t").scan().plan_files()}
    writer.commit([Staged("e2", "landing:b", rows(range(59_000, 61_000), "b"))])  # 1,000 updated, 1,000 new
    table = catalog.load_table("s.t")
    files = [f.file.file_path for f in table.scan().plan_files()]
    assert files and not first & set(files)  # the one file was rewritten
    for path in files:
        meta = pq.ParquetFile(path.removeprefix("file://")).metadata
        by_name = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
        assert not by_name["id"].has_dictionary_page and not by_name["note"].has_dictionary_page, path
        assert by_name["kind"].has_dictionary_page, path
    got = table.scan().to_arrow()
    assert got.num_rows == 61_000 and sorted(got["id"].to_pylist()) == list(range(61_000))
    notes = dict(zip(got["id"].to_pylist(), got["note"].to_pylist(), strict=True))
    assert notes[0].startswith("a") and notes[59_000].startswith("b") and notes[60_500].startswith("b")

"""Big events write their rows ahead of the commit, so memory is bounded by batch size."""

from __future__ import annotations

from pathlib import Path

from icefloe import Project
from icefloe.query import QueryEngine
from tests.helpers import csv_file, make_project

SMALL = {"read": {"format": "csv", "schema": {"id": "long", "v": "string"}, "batch_rows": 500}, "batch": {"spill_bytes": "8KB"}}


def _big(path: Path, n: int, tail: str | None = None) -> Path:
    rows = [f"{i},value-{i}" for i in range(n)] + ([tail] if tail else [])
    return csv_file(path, "id,v", rows)


def test_spilled_event_commits_every_row_once_in_one_snapshot(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": {**SMALL, "write": {"table": "s.t"}}}))
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000)])
    assert event.state == "committed" and event.rows_out == 20_000
    assert project.sql("select count(*) as n, count(distinct id) as d from s.t").to_pylist() == [{"n": 20_000, "d": 20_000}]
    (snapshot,) = project.history("s.t")
    assert snapshot["events"] == [event.id]
    (table,) = project.tables()
    assert table["files"] == 1  # streamed into one data file, not one per chunk


def test_bad_line_after_spilling_leaves_no_rows_visible(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": {**SMALL, "write": {"table": "s.t"}}}))
    project.ingest([_big(tmp_path / "ok.csv", 10)])
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000, tail="oops,x")])
    assert event.state == "dead" and "big.csv:20002" in (event.error or "")
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 10}]


def test_replace_source_with_spilled_files(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": {**SMALL, "write": {"table": "s.t", "mode": "replace_source"}}}))
    project.ingest([_big(tmp_path / "big.csv", 5_000)])
    project.ingest([_big(tmp_path / "big.csv", 3_000)])
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 3_000}]


def test_a_failed_streamed_event_leaves_no_data_files_behind(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"p": {**SMALL, "write": {"table": "s.t"}}})
    project = Project(root)
    project.ingest([_big(tmp_path / "ok.csv", 10)])
    before = sorted((root / "warehouse").rglob("*.parquet"))
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000, tail="oops,x")])
    assert event.state == "dead"
    assert sorted((root / "warehouse").rglob("*.parquet")) == before


def test_partitioned_table_streams_through_the_partition_writer(tmp_path: Path) -> None:
    pipeline = {**SMALL, "write": {"table": "s.t", "partition": ["bucket(4, id)"]}}
    # no maintenance: the small files made a run due, whose compaction could leave fewer files
    # than the writer wrote before the plan below is read (and it started a maintenance process)
    project = Project(make_project(tmp_path / "p", {"p": pipeline}, maintenance={"enabled": False}))
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000)])
    assert event.state == "committed"
    assert project.sql("select count(*) as n, count(distinct id) as d from s.t").to_pylist() == [{"n": 20_000, "d": 20_000}]
    with QueryEngine(project.runtime) as engine:
        engine.query("select count(*) from s.t")
        assert engine.plans["s.t"]["files"] >= 4


def test_a_version_replaced_before_it_ran_is_skipped_and_leaves_no_files(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"p": {**SMALL, "write": {"table": "s.t", "mode": "replace_source"}}})
    _big(root / "landing/big.csv", 5_000)
    project = Project(root)
    project.engine().reconcile()
    _big(root / "landing/big.csv", 3_000)  # re-landed before anything ran: both versions queue
    project.engine().land(project.sources["landing"], "big.csv")
    project.run(once=True)
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 3_000}]
    table = project.catalog.load_table("s.t")
    live = {t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()}
    on_disk = {str(p) for p in (root / "warehouse").rglob("*.parquet")}
    assert on_disk == live

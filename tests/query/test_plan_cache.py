"""One query engine per project: plans are reused only while the table's snapshot, schema and
filter are the same, so a commit, a schema change or a delete between two queries is always seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import ORDERS, csv_file, make_project
from tests.query.test_delete_files import add_position_deletes


def _rows(n: int, first: int = 0) -> list[str]:
    return [f"{i},2026-01-0{1 + i % 3} 00:00:00,{i}.50" for i in range(first, first + n)]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    project.ingest([csv_file(tmp_path / "a.csv", "id,ts,amount", _rows(10))])
    return project


def test_an_unchanged_table_is_planned_once(project: Project) -> None:
    engine = project.query_engine
    for _ in range(3):
        assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    assert engine.planned == 1
    assert engine.plans["sales.orders"]["cached"] is True
    assert project.query_engine is engine  # one connection per project


def test_a_commit_between_two_queries_is_seen(project: Project, tmp_path: Path) -> None:
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    project.ingest([csv_file(tmp_path / "b.csv", "id,ts,amount", _rows(5, first=100))])
    assert project.sql("select count(*) as n, max(id) as top from sales.orders").to_pylist() == [{"n": 15, "top": 104}]
    assert project.query_engine.planned == 2


def test_a_commit_by_another_project_object_is_seen(project: Project, tmp_path: Path) -> None:
    # the writer is another process in practice (a worker); its commit moves the catalog pointer
    assert project.sql("select count(*) as n from sales.orders where id in (1, 2, 100)").to_pylist() == [{"n": 2}]
    with Project(project.root) as other:
        other.ingest([csv_file(tmp_path / "b.csv", "id,ts,amount", _rows(1, first=100))])
    assert project.sql("select count(*) as n from sales.orders where id in (1, 2, 100)").to_pylist() == [{"n": 3}]


def test_position_deletes_added_between_queries_are_honoured(project: Project) -> None:
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    table = project.catalog.load_table("sales.orders")
    (task,) = list(table.scan().plan_files())
    add_position_deletes(table, task.file.file_path, [0, 1])
    assert project.sql("select count(*) as n, min(id) as low from sales.orders").to_pylist() == [{"n": 8, "low": 2}]
    assert project.query_engine.plans["sales.orders"]["reader"] == "pyiceberg"


def test_a_rename_between_queries_is_read_by_field_id(project: Project) -> None:
    assert project.sql("select sum(id) as s from sales.orders").to_pylist() == [{"s": 45}]
    table = project.catalog.load_table("sales.orders")
    with table.update_schema() as update:  # no new snapshot: only the schema id changes
        update.rename_column("id", "order_id")
    assert project.sql("select sum(order_id) as s from sales.orders").to_pylist() == [{"s": 45}]
    with pytest.raises(Exception, match="id"):
        project.sql("select sum(id) as s from sales.orders")


def test_time_travel_and_the_present_share_the_engine(project: Project, tmp_path: Path) -> None:
    first = project.catalog.load_table("sales.orders").current_snapshot()
    assert first is not None
    project.ingest([csv_file(tmp_path / "b.csv", "id,ts,amount", _rows(5, first=100))])
    sql = "select count(*) as n from sales.orders"
    assert project.sql(sql, as_of=first.snapshot_id).to_pylist() == [{"n": 10}]
    assert project.sql(sql).to_pylist() == [{"n": 15}]
    assert project.sql(sql, as_of=first.snapshot_id).to_pylist() == [{"n": 10}]
    assert project.query_engine.planned == 2  # each snapshot planned once


def test_a_dropped_table_is_not_served_from_an_old_view(project: Project) -> None:
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    project.catalog.drop_table("sales.orders")
    with pytest.raises(Exception, match="sales.orders"):
        project.sql('select count(*) as n from "sales"."orders"')


def test_events_are_read_afresh_each_query(project: Project, tmp_path: Path) -> None:
    sql = "select count(*) as n from icefloe.events where state = 'committed'"
    assert project.sql(sql).to_pylist() == [{"n": 1}]
    project.ingest([csv_file(tmp_path / "b.csv", "id,ts,amount", _rows(1, first=100))])
    assert project.sql(sql).to_pylist() == [{"n": 2}]


def test_a_never_evolved_table_is_read_by_name_and_by_field_id_once_renamed(project: Project) -> None:
    engine = project.query_engine
    assert project.sql("select sum(id) as s from sales.orders").to_pylist() == [{"s": 45}]
    sql = "select sql from duckdb_views() where view_name = 'orders'"
    assert "default_value" not in engine.con.sql(sql).fetchall()[0][0]  # plain names: one schema ever
    table = project.catalog.load_table("sales.orders")
    with table.update_schema() as update:
        update.rename_column("id", "order_id")
    assert project.sql("select sum(order_id) as s from sales.orders").to_pylist() == [{"s": 45}]
    assert "default_value" in engine.con.sql(sql).fetchall()[0][0]  # the field-id mapping

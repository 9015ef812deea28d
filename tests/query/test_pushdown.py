"""Filters reach pyiceberg's planning only where that is certainly safe, and results never change."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.query import QueryEngine
from icefloe.query.pushdown import predicates_by_table
from tests.helpers import csv_file, make_project


def test_simple_conjuncts_are_extracted_and_flipped() -> None:
    found = predicates_by_table("select * from s.t where a >= 3 and 5 > b and c = 'x' and d like 'y%'")
    assert found == {"s.t": [("a", "COMPARE_GREATERTHANOREQUALTO", "INTEGER", "3"), ("b", "COMPARE_LESSTHAN", "INTEGER", "5"), ("c", "COMPARE_EQUAL", "STRING", "x")]}


@pytest.mark.parametrize(
    "sql",
    [
        "select * from s.t where a > 1 or b > 2",  # disjunction
        "select * from s.t x join s.u y on x.id = y.id where a > 1",  # join
        "select * from s.t where a > 1 union all select * from s.t",  # referenced twice
        "this is not sql",
    ],
)
def test_nothing_is_pushed_when_it_could_be_unsafe(sql: str) -> None:
    assert "s.t" not in predicates_by_table(sql)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    pipeline = {
        "read": {"format": "csv", "schema": {"id": "long", "ts": "timestamp", "amount": "decimal(12,2)"}},
        "write": {"table": "s.t", "partition": ["day(ts)"]},
    }
    project = Project(make_project(tmp_path / "p", {"p": pipeline}))
    for day in range(1, 6):
        rows = [f"{day * 100 + i},2026-01-0{day} 0{i}:00:00,{day}.{i}0" for i in range(5)]
        project.ingest([csv_file(tmp_path / f"{day}.csv", "id,ts,amount", rows)])
    return project


def test_partition_pruning_plans_fewer_files_with_the_same_answer(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        rows = engine.query("select count(*) as n from s.t where ts >= '2026-01-04'").to_pylist()
        plan = engine.plans["s.t"]
    assert rows == [{"n": 10}]
    assert (plan["files"], plan["planned"]) == (5, 2)
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select count(*) as n from s.t").to_pylist() == [{"n": 25}]
        assert engine.plans["s.t"]["planned"] == 5


def test_column_stats_prune_by_key_range(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select id from s.t where id = 302").to_pylist() == [{"id": 302}]
        assert engine.plans["s.t"]["planned"] == 1


def test_inexact_decimal_literals_are_not_pushed(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        rows = engine.query("select count(*) as n from s.t where amount > 3.395").to_pylist()
        # 3.40 and the ten rows of days 4 and 5; rounding 3.395 to the column's scale (3.40)
        # and pruning on that would drop day 3's file and lose the 3.40 row
        assert rows == [{"n": 11}]
        assert engine.plans["s.t"]["planned"] == 5


def test_self_join_reads_everything_and_stays_correct(project: Project) -> None:
    sql = "select count(*) as n from s.t a where a.id > 400 and a.id in (select id from s.t where id < 500)"
    assert project.sql(sql).to_pylist() == [{"n": 4}]  # 401..404

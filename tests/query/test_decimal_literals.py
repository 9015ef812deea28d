"""A WHERE literal is pushed into scan planning only where it converts exactly to the column's
type; every query answers what DuckDB alone answers over the same rows, and none fails for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StructType

from icefloe import Project
from icefloe.query import QueryEngine
from tests.helpers import csv_file, make_project

SCHEMA = {
    "id": "long", "ts": "timestamp", "d": "date", "amount": "decimal(12,2)", "balance": "decimal(12,2)",
    "name": "string", "select": "long",
}  # fmt: skip
NAMES = ["Ann", "O'Brien", "Zed", "Mia"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    tmp = tmp_path_factory.mktemp("lit")
    pipeline = {"read": {"format": "csv", "schema": SCHEMA}, "write": {"table": "s.t"}}
    project = Project(make_project(tmp / "p", {"p": pipeline}))
    for day in range(1, 6):  # one file per day, so pruning by any column shows in the plan
        rows = [
            f'{day * 10 + i},2026-01-0{day} 0{i}:00:00,2026-01-0{day},{day}.{i}0,{day - 3 + i * 0.25:.2f},"{NAMES[i]}",{day}'
            for i in range(4)
        ]
        project.ingest([csv_file(tmp / f"{day}.csv", ",".join(f'"{c}"' for c in SCHEMA), rows)])
    return project


def _duckdb_alone(project: Project, sql: str) -> list[dict[str, Any]]:
    """The same SQL over the table's rows (pyiceberg's scan) in a plain DuckDB, no push-down."""
    con = duckdb.connect()
    con.register("rows", project.catalog.load_table("s.t").scan().to_arrow())
    con.execute('CREATE SCHEMA s; CREATE VIEW s.t AS SELECT * FROM "rows"')
    return con.sql(sql).to_arrow_table().to_pylist()


WHERES = [
    "balance > 0", "amount > 5", "balance >= -1", "balance < -0.5", "amount = 5", "amount = 5.0",
    "amount = 5.000", "amount > 5.001", "amount > 1e1", "amount > 99999999999", "amount < 1_000",
    "balance > -0", "id > 2.5", "id = 31.0", "id > 99999999999999999999", "id > -5", "id > 1e2",
    "id >= 1_0", "d = '2026-01-02'", "d = '2026-01-02 00:00:00'", "d > '2026-01-02 10:00:00'",
    "ts >= '2026-01-03'", "ts > '2026-01-03 01:30'", "ts = '2026-01-03T01:00:00.000000'",
    "name = 'O''Brien'", "name > 'M'", '"select" = 2', 't."select" = 2', "s.t.balance > 0",
    "x.balance > 0 and x.amount <= 4", "0 < balance", "amount between 2 and 3",
]  # fmt: skip


@pytest.mark.parametrize("where", WHERES)
def test_every_literal_answers_what_duckdb_alone_answers(project: Project, where: str) -> None:
    alias = " x" if "x." in where else ""
    sql = f"select id from s.t{alias} where {where} order by id"
    assert project.sql(sql).to_pylist() == _duckdb_alone(project, sql)


def test_integer_literals_on_a_decimal_column_are_pushed_exactly(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select count(*) as n from s.t where amount > 4").to_pylist() == [{"n": 7}]
        assert engine.plans["s.t"]["planned"] == 2  # days 4 and 5: 4 converted to 4.00, not dropped
    with QueryEngine(project.runtime) as engine:
        rows = engine.query("select count(*) as n from s.t where balance > 0").to_pylist()
    assert rows == [{"n": len([1 for day in range(1, 6) for i in range(4) if day - 3 + i * 0.25 > 0])}]


def test_a_literal_that_does_not_fit_the_column_is_not_pushed(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select count(*) as n from s.t where amount < 99999999999").to_pylist() == [{"n": 20}]
        assert (engine.plans["s.t"]["planned"], engine.plans["s.t"]["filter"]) == (5, "AlwaysTrue()")


def test_a_struct_field_is_not_mistaken_for_a_top_level_column(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {}, routes=[]))
    project.catalog.create_namespace_if_not_exists("s")
    point = StructType(NestedField(3, "x", LongType()))
    table = project.catalog.create_table(
        "s.u", schema=Schema(NestedField(1, "x", LongType()), NestedField(2, "p", point))
    )
    arrow_p = pa.struct([pa.field("x", pa.int64())])
    for x, px in [(1, 5), (5, 1)]:  # two files: top-level x and p.x disagree
        table.append(pa.table({"x": pa.array([x], pa.int64()), "p": pa.array([{"x": px}], arrow_p)}))
    assert project.sql("select x from s.u where p.x = 5").to_pylist() == [{"x": 1}]
    assert project.sql("select x from s.u where u.x = 5").to_pylist() == [{"x": 5}]

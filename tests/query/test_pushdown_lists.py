"""IN lists, ORs of equalities and BETWEEN reach planning, and never change a query's answer.

Every query runs twice, with and without pushdown (and the second time through the plan cache);
the answers must be identical while the pushed runs plan fewer files where the filter allows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import DecimalType, LongType, NestedField, StringType, TimestampType

from icefloe import Project
from icefloe.query import QueryEngine
from icefloe.query import duck as duck_module
from icefloe.query.pushdown import AnyOf, predicates_by_table
from tests.helpers import make_project

SCHEMA = Schema(
    NestedField(1, "id", LongType()),
    NestedField(2, "ts", TimestampType()),
    NestedField(3, "amount", DecimalType(12, 2)),
    NestedField(4, "name", StringType()),
)
ARROW = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("amount", pa.decimal128(12, 2)), ("name", pa.string())])


def _day(day: int) -> pa.Table:
    """Day `day` of January: ids day*100.., amounts day.00..day.40, every third name NULL."""
    ids = [day * 100 + i for i in range(5)]
    return pa.table(
        {
            "id": ids,
            "ts": [datetime(2026, 1, day) + timedelta(hours=5 * i) for i in range(5)],
            "amount": [Decimal(f"{day}.{i}0") for i in range(5)],
            "name": [None if i % 3 == 0 else f"n{day}{i}" for i in range(5)],
        },
        schema=ARROW,
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(make_project(tmp_path / "p", {"x": {"read": {"format": "csv"}, "write": {"table": "t.x"}}}))
    project.catalog.create_namespace_if_not_exists("t")
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"))
    table = project.catalog.create_table("t.p", schema=SCHEMA, partition_spec=spec)
    for day in range(1, 6):
        table.append(_day(day))
    return project


def _answer(engine: QueryEngine, sql: str) -> list[dict[str, Any]]:
    rows = engine.query(sql).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


CASES = [
    # (where clause, files planned with pushdown out of 5)
    ("id in (101, NULL, 402)", 2),
    ("id in (NULL)", 5),  # selects nothing; nothing to push
    ("id not in (101, NULL)", 5),  # NULL in NOT IN: no row at all
    ("name in ('n21', NULL, 'n52')", 2),
    ("id = 101 or id = 402 or name = 'n53'", 3),
    ("(id = 101 or id = NULL)", 1),
    ("id = 101 or amount > 4", 5),  # not only equalities: stays DuckDB's
    ("id in (101, 2.5)", 5),  # 2.5 is no long: not pushed
    ("id in (101, 102) and amount between 1.10 and 1.20", 1),
    ("ts between '2026-01-02' and '2026-01-03 12:00:00'", 2),
    ("ts between '2026-01-03' and '2026-01-02'", 0),
    ("ts between '2026-01-02 15:00:00' and '2026-01-02 15:00:00'", 1),
    ("amount between 1.005 and 2.10", 2),  # 1.005 is inexact: only the upper bound is pushed
    ("amount between 2.40 and 3.00", 2),
    ("amount not between 1.00 and 4.40", 5),
    ("name between 'n2' and 'n3'", 1),
]


@pytest.mark.parametrize(("where", "planned"), CASES)
def test_pushed_and_unpushed_answers_agree(project: Project, monkeypatch: pytest.MonkeyPatch, where: str, planned: int) -> None:
    sql = f"select id, ts, amount, name from t.p where {where}"
    with QueryEngine(project.runtime) as engine:
        pushed = _answer(engine, sql)
        assert engine.plans["t.p"]["planned"] == planned, engine.plans["t.p"]
        assert _answer(engine, sql) == pushed  # again, from the cached plan
        assert engine.plans["t.p"]["cached"] is True
    monkeypatch.setattr(duck_module, "predicates_in", lambda *_: {})
    with QueryEngine(project.runtime) as engine:
        assert _answer(engine, sql) == pushed
        assert engine.plans["t.p"]["planned"] == 5


def test_expected_answers_on_nulls_and_bounds(project: Project) -> None:
    with QueryEngine(project.runtime) as engine:
        assert _answer(engine, "select id from t.p where id in (101, NULL, 402)") == [{"id": 101}, {"id": 402}]
        assert _answer(engine, "select id from t.p where id not in (101, NULL)") == []
        assert _answer(engine, "select count(*) as n from t.p where name in (NULL)") == [{"n": 0}]
        between = "select id from t.p where ts between '2026-01-02 05:00:00' and '2026-01-03'"
        assert _answer(engine, between) == [{"id": 201}, {"id": 202}, {"id": 203}, {"id": 204}, {"id": 300}]


def test_an_in_list_is_pushed_by_field_id_after_a_rename(project: Project) -> None:
    table = project.catalog.load_table("t.p")
    with table.update_schema() as update:
        update.rename_column("id", "key")
    with QueryEngine(project.runtime) as engine:
        assert _answer(engine, "select key from t.p where key in (101, 503)") == [{"key": 101}, {"key": 503}]
        assert engine.plans["t.p"]["planned"] == 2


def test_a_re_added_column_does_not_match_its_old_values(project: Project) -> None:
    table = project.catalog.load_table("t.p")
    with table.update_schema() as update:
        update.delete_column("name")
    with table.update_schema() as update:
        update.add_column("name", StringType())
    table = project.catalog.load_table("t.p")
    table.append(pa.table({"id": [900], "ts": [datetime(2026, 1, 9)], "amount": [Decimal("9.00")], "name": ["n21"]}, schema=ARROW))
    with QueryEngine(project.runtime) as engine:
        # the old n21 (day 2) belongs to the dropped column: only the new row answers
        assert _answer(engine, "select id from t.p where name in ('n21', 'n31') or name = 'zz'") == [{"id": 900}]


def test_in_lists_and_ors_are_parsed_into_equalities() -> None:
    found = predicates_by_table("select * from s.t where a in (1, NULL, 3) and (b = 'x' or c in (2)) and d between 1 and 2")
    assert found == {
        "s.t": [
            AnyOf((("a", "COMPARE_EQUAL", "INTEGER", "1"), ("a", "COMPARE_EQUAL", "INTEGER", "3"))),
            AnyOf((("b", "COMPARE_EQUAL", "STRING", "x"), ("c", "COMPARE_EQUAL", "INTEGER", "2"))),
            ("d", "COMPARE_GREATERTHANOREQUALTO", "INTEGER", "1"),
            ("d", "COMPARE_LESSTHANOREQUALTO", "INTEGER", "2"),
        ]
    }


@pytest.mark.parametrize(
    "sql",
    [
        "select * from s.t where a in (select 1)",  # a subquery
        "select * from s.t where a not in (1, 2)",
        "select * from s.t where a = 1 or b > 2",  # one side is not an equality
        "select * from s.t where a in (1, b)",  # a column in the list
        "select * from s.t where a not between 1 and 2",
    ],
)
def test_what_is_not_an_or_of_equalities_is_not_pushed(sql: str) -> None:
    assert "s.t" not in predicates_by_table(sql)

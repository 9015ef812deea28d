"""Queries find each column's values by Iceberg field id, so names Parquet cannot hold verbatim,
renames, drop-and-re-add and type promotions all read what pyiceberg's own scan reads."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
)

from icefloe import Project
from icefloe.cli import main
from icefloe.query import QueryEngine
from tests.helpers import csv_file, make_project

INFERRED = {"read": {"format": "csv"}, "write": {"table": "t.x"}}
AWKWARD = "Order ID,Customer Name,unit-price,e-mail,2nd,a.b"


def _oracle(table: Table, columns: list[str]) -> list[dict[str, Any]]:
    """pyiceberg's scan, which reads by field id: what every Iceberg reader must return."""
    rows = table.scan().to_arrow().select(columns).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _sql(project: Project, sql: str) -> list[dict[str, Any]]:
    rows = project.sql(sql).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(make_project(tmp_path / "p", {"x": INFERRED}))
    project.catalog.create_namespace_if_not_exists("t")  # for the tables built here with pyiceberg
    return project


def test_columns_with_names_parquet_sanitizes_are_read(project: Project, tmp_path: Path) -> None:
    project.ingest([csv_file(tmp_path / "a.csv", AWKWARD, ["1,Ann,2.5,a@x,q,z", "2,Bob,3.5,b@x,r,y"])])
    columns = AWKWARD.split(",")
    rows = _sql(project, "select " + ", ".join(f'"{c}"' for c in columns) + " from t.x")
    assert rows == [
        {"Order ID": 1, "Customer Name": "Ann", "unit-price": 2.5, "e-mail": "a@x", "2nd": "q", "a.b": "z"},
        {"Order ID": 2, "Customer Name": "Bob", "unit-price": 3.5, "e-mail": "b@x", "2nd": "r", "a.b": "y"},
    ]
    assert rows == _oracle(project.catalog.load_table("t.x"), columns)
    assert project.sql('select count(*) as n from t.x where "Order ID" = 2').to_pylist() == [{"n": 1}]
    assert project.sql("""select "Customer Name" as c from t.x where "a.b" = 'y'""").to_pylist() == [{"c": "Bob"}]


def test_cli_sql_reads_sanitized_names(project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project.ingest([csv_file(tmp_path / "a.csv", AWKWARD, ["1,Ann,2.5,a@x,q,z"])])
    main(["sql", "-p", str(project.root), "--format", "json", 'select "e-mail", "2nd" from t.x'])  # returns on success
    assert json.loads(capsys.readouterr().out) == [{"e-mail": "a@x", "2nd": "q"}]


def test_a_renamed_column_keeps_its_old_values(project: Project, tmp_path: Path) -> None:
    project.ingest([csv_file(tmp_path / "a.csv", "id,name", ["1,ann", "2,bob"])])
    with project.catalog.load_table("t.x").update_schema() as update:
        update.rename_column("name", "full_name")
    project.ingest([csv_file(tmp_path / "b.csv", "id,full_name", ["3,cy"])])
    rows = _sql(project, "select id, full_name from t.x")
    assert rows == [{"id": 1, "full_name": "ann"}, {"id": 2, "full_name": "bob"}, {"id": 3, "full_name": "cy"}]
    assert rows == _oracle(project.catalog.load_table("t.x"), ["id", "full_name"])
    assert project.sql("select id from t.x where full_name = 'bob'").to_pylist() == [{"id": 2}]


def test_a_dropped_and_re_added_column_does_not_show_its_old_values(project: Project, tmp_path: Path) -> None:
    project.ingest([csv_file(tmp_path / "a.csv", "id,note", ["1,old", "2,older"])])
    table = project.catalog.load_table("t.x")
    with table.update_schema() as update:
        update.delete_column("note")
    with project.catalog.load_table("t.x").update_schema() as update:
        update.add_column("note", StringType())  # same name, new field id
    project.ingest([csv_file(tmp_path / "b.csv", "id,note", ["3,new"])])
    rows = _sql(project, "select id, note from t.x")
    assert rows == [{"id": 1, "note": None}, {"id": 2, "note": None}, {"id": 3, "note": "new"}]
    assert rows == _oracle(project.catalog.load_table("t.x"), ["id", "note"])
    assert project.sql("select count(*) as n from t.x where note = 'old'").to_pylist() == [{"n": 0}]


def test_widened_types_read_old_files(project: Project) -> None:
    schema = Schema(
        NestedField(1, "i", IntegerType()), NestedField(2, "f", FloatType()), NestedField(3, "d", DecimalType(10, 2))
    )
    table = project.catalog.create_table("t.wide", schema=schema)
    table.append(
        pa.table(
            {
                "i": pa.array([7], pa.int32()),
                "f": pa.array([1.5], pa.float32()),
                "d": pa.array([Decimal("12345678.91")], pa.decimal128(10, 2)),
            }
        )
    )
    with table.update_schema() as update:
        update.update_column("i", LongType())
        update.update_column("f", DoubleType())
        update.update_column("d", DecimalType(14, 2))
    table = project.catalog.load_table("t.wide")
    big = pa.table(
        {
            "i": pa.array([2**40], pa.int64()),
            "f": pa.array([0.1], pa.float64()),
            "d": pa.array([Decimal("123456789012.34")], pa.decimal128(14, 2)),
        }
    )
    table.append(big)
    result = project.sql("select i, f, d from t.wide order by i")
    assert [str(t) for t in result.schema.types] == ["int64", "double", "decimal128(14, 2)"]
    assert result.to_pylist() == [
        {"i": 7, "f": 1.5, "d": Decimal("12345678.91")},
        {"i": 2**40, "f": 0.1, "d": Decimal("123456789012.34")},
    ]
    assert result.to_pylist() == sorted(
        _oracle(project.catalog.load_table("t.wide"), ["i", "f", "d"]), key=lambda r: r["i"]
    )
    assert project.sql("select count(*) as n from t.wide where d > 100000000").to_pylist() == [{"n": 1}]


def test_a_list_column_is_read_by_field_id_through_duckdb(project: Project) -> None:
    schema = Schema(
        NestedField(1, "id", LongType()), NestedField(2, "tags", ListType(3, IntegerType(), element_required=False))
    )
    table = project.catalog.create_table("t.lists", schema=schema)
    table.append(pa.table({"id": pa.array([1], pa.int64()), "tags": pa.array([[1, 2]], pa.list_(pa.int32()))}))
    with table.update_schema() as update:
        update.rename_column("tags", "labels")
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select id, labels from t.lists").to_pylist() == [{"id": 1, "labels": [1, 2]}]
        assert engine.plans["t.lists"]["reader"] == "duckdb"


def test_a_struct_with_a_renamed_child_is_read_through_pyiceberg(project: Project) -> None:
    # DuckDB matches struct children by name, so a renamed child would come back NULL there
    point = StructType(NestedField(3, "x", LongType()), NestedField(4, "y", LongType()))
    table = project.catalog.create_table(
        "t.points", schema=Schema(NestedField(1, "id", LongType()), NestedField(2, "p", point))
    )
    arrow_point = pa.struct([pa.field("x", pa.int64()), pa.field("y", pa.int64())])
    table.append(pa.table({"id": pa.array([1], pa.int64()), "p": pa.array([{"x": 5, "y": 6}], arrow_point)}))
    with table.update_schema() as update:
        update.rename_column("p.x", "east")
    with QueryEngine(project.runtime) as engine:
        rows = engine.query("select id, p.east as east, p.y as y from t.points").to_pylist()
        plan = engine.plans["t.points"]
    assert rows == [{"id": 1, "east": 5, "y": 6}]
    assert (plan["reader"], plan["why"]) == (
        "pyiceberg",
        "column 'p' has type struct<3: east: optional long, 4: y: optional long>",
    )


def test_partition_paths_are_not_taken_for_columns(tmp_path: Path) -> None:
    pipeline = {
        "read": {"format": "csv", "schema": {"id": "long", "day": "date"}},
        "write": {"table": "t.parts", "partition": ["day"]},
    }
    project = Project(make_project(tmp_path / "p", {"p": pipeline}))
    project.ingest([csv_file(tmp_path / "a.csv", "id,day", ["1,2026-01-01", "2,2026-01-02"])])
    with QueryEngine(project.runtime) as engine:
        rows = engine.query(
            "select * exclude (_icefloe_event, _icefloe_source, _icefloe_ingested_at) from t.parts order by id"
        )
        assert rows.column_names == ["id", "day"]
        assert rows.num_rows == 2
    with QueryEngine(project.runtime) as engine:
        assert engine.query("select id from t.parts where day = '2026-01-02'").to_pylist() == [{"id": 2}]
        assert (engine.plans["t.parts"]["planned"], engine.plans["t.parts"]["reader"]) == (1, "duckdb")


def test_every_primitive_type_reads_as_pyiceberg_reads_it(project: Project) -> None:
    import datetime as dt
    import uuid

    from pyiceberg.types import (
        BinaryType,
        BooleanType,
        DateType,
        FixedType,
        TimestampType,
        TimestamptzType,
        TimeType,
        UUIDType,
    )

    types = [BooleanType(), IntegerType(), LongType(), FloatType(), DoubleType(), DecimalType(38, 10), DateType(),
             TimeType(), TimestampType(), TimestamptzType(), StringType()]  # fmt: skip
    values = [True, -7, 2**62, 0.5, 1e300, Decimal("1234567890123456789012345678.0123456789"), dt.date(1969, 12, 31),
              dt.time(23, 59, 59, 999999), dt.datetime(2026, 1, 1, 1, 2, 3, 4),
              dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), "ü ß 中"]  # fmt: skip
    others = [BinaryType(), UUIDType(), FixedType(3)]
    other_values = [b"\x00\xff", uuid.UUID("12345678-1234-5678-1234-567812345678"), b"abc"]
    for name, column_types, column_values in [("t.prims", types, values), ("t.others", others, other_values)]:
        schema = Schema(*(NestedField(i + 1, f"c{i}", t) for i, t in enumerate(column_types)))
        table = project.catalog.create_table(name, schema=schema)
        table.append(
            pa.Table.from_pylist([{f"c{i}": v for i, v in enumerate(column_values)}], schema=schema.as_arrow())
        )
        with table.update_schema() as update:
            for i in range(len(column_types)):
                update.rename_column(f"c{i}", f"renamed {i}")
        # DuckDB hands a UUID back to Arrow as its text form
        expected = [
            {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in row.items()}
            for row in project.catalog.load_table(name).scan().to_arrow().to_pylist()
        ]
        with QueryEngine(project.runtime) as engine:
            assert engine.query(f"select * from {name}").to_pylist() == expected
            assert engine.plans[name]["reader"] == ("duckdb" if name == "t.prims" else "pyiceberg")
    assert expected == [
        {"renamed 0": b"\x00\xff", "renamed 1": "12345678-1234-5678-1234-567812345678", "renamed 2": b"abc"}
    ]

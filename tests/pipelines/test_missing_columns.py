"""A declared column that a file lacks is an error, unless read.nullable_missing says NULL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icefloe import Project
from tests.helpers import make_project

SCHEMA = {"id": "long", "amount": "double", "note": "string"}


def _file(tmp_path: Path, fmt: str, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        names = list(rows[0])
        path.write_text(",".join(names) + "\n" + "".join(",".join(str(r[n]) for n in names) + "\n" for r in rows))
    elif fmt == "ndjson":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=2))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _project(tmp_path: Path, fmt: str, **read: Any) -> Project:
    pipeline = {"read": {"format": fmt, "schema": SCHEMA, **read}, "write": {"table": "t.rows"}}
    return Project(make_project(tmp_path / "p", {"rows": pipeline}))


FORMATS = ["csv", "ndjson", "json", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_declared_column_missing_from_the_file_is_dead_naming_file_and_columns(tmp_path: Path, fmt: str) -> None:
    project = _project(tmp_path, fmt)
    (event,) = project.ingest([_file(tmp_path, fmt, [{"id": 1}, {"id": 2}])])
    assert event.state == "dead" and event.error_kind == "DataError", event.error
    assert f"landing:in.{fmt}: declared columns 'amount', 'note' not in the file" in (event.error or "")
    assert "nullable_missing" in (event.error or "")


@pytest.mark.parametrize("fmt", FORMATS)
def test_nullable_missing_reads_them_as_null(tmp_path: Path, fmt: str) -> None:
    project = _project(tmp_path, fmt, nullable_missing=True)
    (event,) = project.ingest([_file(tmp_path, fmt, [{"id": 1, "note": "x"}, {"id": 2, "note": "y"}])])
    assert event.state == "committed", event.error
    assert project.sql("select id, amount, note from t.rows order by id").to_pylist() == [
        {"id": 1, "amount": None, "note": "x"},
        {"id": 2, "amount": None, "note": "y"},
    ]


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_a_json_key_that_is_present_but_null_or_sparse_is_not_missing(tmp_path: Path, fmt: str) -> None:
    project = _project(tmp_path, fmt)
    rows = [{"id": 1, "amount": None, "note": "x"}, {"id": 2, "amount": None}]
    (event,) = project.ingest([_file(tmp_path, fmt, rows)])
    assert event.state == "committed", event.error
    assert project.sql("select amount, note from t.rows order by id").to_pylist() == [
        {"amount": None, "note": "x"},
        {"amount": None, "note": None},
    ]


def test_a_column_differing_only_in_case_is_named_in_the_error(tmp_path: Path) -> None:
    project = _project(tmp_path, "csv")
    path = tmp_path / "c.csv"
    path.write_text("ID,amount,note\n1,2.5,x\n")
    (event,) = project.ingest([path])
    assert "declared column 'id' not in the file (it has 'ID' for 'id'" in (event.error or ""), event.error


def test_headerless_csv_with_fewer_columns_than_declared_is_dead(tmp_path: Path) -> None:
    project = _project(tmp_path, "csv", options={"header": False})
    path = tmp_path / "h.csv"
    path.write_text("1,2.5\n2,3.5\n")
    (event,) = project.ingest([path])
    assert event.state == "dead" and "declared column 'note' not in the file" in (event.error or "")

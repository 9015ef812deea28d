"""New columns from inference never reshape a table silently: `write.schema_evolution`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.config import load_config
from icefloe.errors import ConfigError
from tests.helpers import csv_file, make_project

INFERRED = {"format": "csv"}
SPILLING = {"read": {**INFERRED, "batch_rows": 100}, "batch": {"spill_bytes": "4KB"}}


def _project(tmp_path: Path, write: dict[str, Any], **pipeline: Any) -> Project:
    return Project(make_project(tmp_path / "p", {"p": {"read": INFERRED, **pipeline, "write": {"table": "s.t", **write}}}))


def _columns(project: Project) -> list[str]:
    return [f.name for f in project.catalog.load_table("s.t").schema().fields if not f.name.startswith("_icefloe_")]


def test_a_file_read_with_the_wrong_delimiter_dies_and_leaves_the_table_alone(tmp_path: Path) -> None:
    project = _project(tmp_path, {})
    (good,) = project.ingest([csv_file(tmp_path / "a.csv", "id,name", ["1,x"])])
    (bad,) = project.ingest([csv_file(tmp_path / "b.csv", "id;name", ["2;y"])])
    assert good.state == "committed" and bad.state == "dead"
    error = bad.error or ""
    assert "b.csv" in error and "'id', 'name'" in error and "'id;name'" in error and "delimiter" in error
    assert bad.error_kind == "SchemaError"
    assert _columns(project) == ["id", "name"]  # no junk column
    assert project.sql("select id, name from s.t").to_pylist() == [{"id": 1, "name": "x"}]  # no all-NULL row


def test_add_columns_is_the_default_and_a_new_column_joins_the_table(tmp_path: Path) -> None:
    project = _project(tmp_path, {})
    assert project.config.pipelines["p"].write.schema_evolution == "add_columns"
    project.ingest([csv_file(tmp_path / "a.csv", "id,name", ["1,x"])])
    (event,) = project.ingest([csv_file(tmp_path / "b.csv", "id,name,email", ["2,y,y@x.org"])])
    assert event.state == "committed"
    assert _columns(project) == ["id", "name", "email"]


def test_strict_refuses_a_column_the_table_lacks(tmp_path: Path) -> None:
    project = _project(tmp_path, {"schema_evolution": "strict"})
    (first,) = project.ingest([csv_file(tmp_path / "a.csv", "id,name", ["1,x"])])  # creates the table
    (same,) = project.ingest([csv_file(tmp_path / "b.csv", "name,id", ["y,2"])])
    (wider,) = project.ingest([csv_file(tmp_path / "c.csv", "id,name,email", ["3,z,z@x.org"])])
    assert (first.state, same.state, wider.state) == ("committed", "committed", "dead")
    assert "c.csv" in (wider.error or "") and "'email'" in (wider.error or "") and "strict" in (wider.error or "")
    assert _columns(project) == ["id", "name"]
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 2}]


def test_strict_holds_for_rows_written_ahead_of_the_commit_too(tmp_path: Path) -> None:
    project = _project(tmp_path, {"schema_evolution": "strict"}, **SPILLING)
    project.ingest([csv_file(tmp_path / "a.csv", "id,name", [f"{i},x" for i in range(1_000)])])
    (wider,) = project.ingest([csv_file(tmp_path / "b.csv", "id,name,email", [f"{i},y,e" for i in range(1_000)])])
    assert wider.state == "dead" and "strict" in (wider.error or "") and "b.csv" in (wider.error or "")
    assert _columns(project) == ["id", "name"]
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 1_000}]
    (misread,) = project.ingest([csv_file(tmp_path / "c.csv", "id;name", [f"{i};z" for i in range(1_000)])])
    assert misread.state == "dead" and "c.csv" in (misread.error or "") and "delimiter" in (misread.error or "")
    assert _columns(project) == ["id", "name"]


def test_a_bad_schema_evolution_value_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    make_project(tmp_path / "p", {"p": {"read": INFERRED, "write": {"table": "s.t", "schema_evolution": "sometimes"}}})
    with pytest.raises(ConfigError, match=r"icefloe\.yaml:\d+: pipelines.p.write.schema_evolution: .*'add_columns' or 'strict'"):
        load_config(tmp_path / "p")

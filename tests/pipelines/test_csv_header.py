"""CSV headers: duplicated names, names differing only in case, unnamed columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.csvproject import csv_project as _project
from tests.pipelines.csvproject import ingest_one as _ingest


def test_a_duplicated_header_column_is_dead_naming_line_1_and_the_column(tmp_path: Path) -> None:
    event = _ingest(_project(tmp_path), tmp_path, "d.csv", b"id,name,id\n1,a,2\n")
    assert event.state == "dead" and event.error_kind == "DataError"
    assert (event.error or "").startswith("landing:d.csv:1: the header names column 'id' twice")


def test_the_header_line_counts_skipped_rows(tmp_path: Path) -> None:
    project = _project(tmp_path, options={"skip_rows": 2})
    event = _ingest(project, tmp_path, "d.csv", b"exported by x\n\nid,name,id\n1,a,2\n")
    assert "landing:d.csv:3: the header names column 'id' twice" in (event.error or ""), event.error


@pytest.mark.parametrize("header", ["id,Name,name", "id,e-mail,E-Mail"])
def test_header_names_differing_only_in_case_are_dead(tmp_path: Path, header: str) -> None:
    # DuckDB reads such a pair as one column: the second value silently came back as the first
    event = _ingest(_project(tmp_path), tmp_path, "c.csv", f"{header}\n1,a,b\n".encode())
    assert event.state == "dead", event.error
    assert "landing:c.csv:1:" in (event.error or "") and "differ only in case" in (event.error or "")


def test_a_trailing_delimiter_is_an_empty_unnamed_column_and_is_dropped(tmp_path: Path) -> None:
    project = _project(tmp_path)
    event = _ingest(project, tmp_path, "t.csv", b"id,name,\r\n1,a,\r\n2,b,\r\n")
    assert event.state == "committed", event.error
    assert project.sql("select * exclude (_icefloe_event, _icefloe_source, _icefloe_ingested_at) from t.rows").to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
    ]


def test_an_unnamed_column_holding_a_value_is_dead_at_that_line(tmp_path: Path) -> None:
    event = _ingest(_project(tmp_path), tmp_path, "u.csv", b"id,,name\n1,,a\n2,,b\n3,x,c\n")
    assert event.state == "dead", event.error
    assert "landing:u.csv:4: column 2 has no name in the header but holds a value" in (event.error or "")

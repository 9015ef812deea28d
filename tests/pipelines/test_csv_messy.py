"""CSV files as they arrive from other tools: BOMs, CRLF, blank lines, no final newline, odd names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from tests.helpers import make_project

ROWS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b c"}]


def _project(tmp_path: Path, **read: Any) -> Project:
    pipeline = {"read": {"format": "csv", **read}, "write": {"table": "t.rows"}}
    return Project(make_project(tmp_path / "p", {"rows": pipeline}))


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbfid,name\n1,a\n2,b c\n",
        b"id,name\r\n1,a\r\n2,b c\r\n",
        b"\xef\xbb\xbfid,name\r\n1,a\r\n2,\"b c\"\r\n\r\n\r\n",
        b"id,name\n1,a\n2,b c\n\n\n\n",
        b"id,name\n1,a\n2,b c",
        b'id,name\n1,"a"\n2,"b c"',
        b"id,name\r1,a\r2,b c\r",
    ],
    ids=["bom", "crlf", "bom-crlf-quoted-blank-lines", "blank-lines-at-end", "no-final-newline", "quoted-no-final-newline", "cr"],
)
def test_messy_but_valid_files_commit_exactly_their_rows(tmp_path: Path, data: bytes) -> None:
    project = _project(tmp_path, schema={"id": "long"})
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    (event,) = project.ingest([path])
    assert event.state == "committed" and event.rows_out == 2, event.error
    assert project.sql("select id, name from t.rows order by id").to_pylist() == ROWS


def test_odd_column_names_are_kept_as_written(tmp_path: Path) -> None:
    project = _project(tmp_path)
    path = tmp_path / "o.csv"
    path.write_bytes(b'"Order ID",unit-price,2nd,a.b,"x,y"\n1,2.5,z,w,v\n')
    (event,) = project.ingest([path])
    assert event.state == "committed", event.error
    table = project.catalog.load_table("t.rows").scan().to_arrow()
    assert table.select(["Order ID", "unit-price", "2nd", "a.b", "x,y"]).to_pylist() == [
        {"Order ID": 1, "unit-price": 2.5, "2nd": "z", "a.b": "w", "x,y": "v"}
    ]


def test_a_bad_row_in_a_file_with_cr_line_endings_is_named_by_its_line(tmp_path: Path) -> None:
    project = _project(tmp_path)
    path = tmp_path / "cr.csv"
    path.write_bytes(b"id,name\r1,a\r2,b,c\r3,d\r")
    (event,) = project.ingest([path])
    assert event.state == "dead" and "landing:cr.csv:3: expected 2 columns, got 3" in (event.error or ""), event.error

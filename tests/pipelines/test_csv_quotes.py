"""A quote that is never closed must not swallow the rest of a CSV file into one value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.errors import ConfigError
from tests.pipelines.csvproject import csv_project as _project
from tests.pipelines.csvproject import ingest_one as _ingest


def _rows(project: Project) -> list[dict[str, Any]]:
    return project.sql("select id, name from t.rows order by id").to_pylist()


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'id,name\n1,"x\n2,b\n3,c\n', 2),  # the file: one row committed, silently
        (b'id,name\n1,a\n2,"b', 3),  # open at the end, no final newline
        (b'id,name\r\n1,"x\r\n2,b\r\n', 2),  # CRLF
        (b'id,name\n1,a\n"2,b\n3,c\n', 3),  # opened in the first column: the row is short a column
        (b'id,name\n1,a\n2,"b\n' + b"".join(b"%d,v\n" % i for i in range(3, 200_000)), 3),  # over many blocks
    ],
    ids=["issue", "at-end", "crlf", "first-column", "many-blocks"],
)
def test_an_unterminated_quote_is_dead_at_the_line_where_it_opened(tmp_path: Path, data: bytes, line: int) -> None:
    project = _project(tmp_path, batch_rows=1000)  # pyarrow parses 1 MiB blocks then
    good = _ingest(project, tmp_path, "good.csv", b"id,name\n10,ok\n")
    event = _ingest(project, tmp_path, "q.csv", data)
    assert event.state == "dead" and event.error_kind == "DataError", event.error
    assert f"landing:q.csv:{line}:" in (event.error or "") and "quote" in (event.error or "")
    assert good.state == "committed" and _rows(project) == [{"id": 10, "name": "ok"}]


def test_an_unterminated_quote_in_a_typed_column_is_dead_too(tmp_path: Path) -> None:
    project = _project(tmp_path, schema={"id": "long", "n": "long"})
    event = _ingest(project, tmp_path, "q.csv", b'id,n\n1,2\n2,"3\n3,4\n')
    assert event.state == "dead" and "landing:q.csv:3:" in (event.error or ""), event.error


def test_a_quoted_value_with_a_line_break_needs_newlines_in_values(tmp_path: Path) -> None:
    data = b'id,name\n1,"two\nlines"\n2,b\n'
    strict = _ingest(_project(tmp_path / "a"), tmp_path, "m.csv", data)
    assert strict.state == "dead" and "landing:m.csv:2:" in (strict.error or "")
    allowed = _project(tmp_path / "b", options={"newlines_in_values": True})
    event = _ingest(allowed, tmp_path, "m.csv", data)
    assert event.state == "committed" and event.rows_out == 2
    assert _rows(allowed) == [{"id": 1, "name": "two\nlines"}, {"id": 2, "name": "b"}]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'id,name\n1,"x\n2,b\n3,c\n', 2),
        (b'id,name\n1,"two\nlines"\n2,"b', 4),
        (b'id,name\n1,a\n"2,b\n3,c\n', 3),
        (b'id,name\n1,a\n2,"b\n' + b"".join(b"%d,v\n" % i for i in range(3, 200_000)), 3),
    ],
    ids=["last-column", "after-a-good-multiline-value", "first-column", "many-blocks"],
)
def test_with_newlines_allowed_a_quote_open_at_the_end_is_still_dead(tmp_path: Path, data: bytes, line: int) -> None:
    project = _project(tmp_path, batch_rows=1000, options={"newlines_in_values": True})
    event = _ingest(project, tmp_path, "q.csv", data)
    assert event.state == "dead", event.error
    assert f"landing:q.csv:{line}: the quote opened on line {line} is never closed" in (event.error or "")


def test_with_newlines_allowed_a_closed_value_ending_in_a_line_break_commits(tmp_path: Path) -> None:
    project = _project(tmp_path, options={"newlines_in_values": True})
    event = _ingest(project, tmp_path, "m.csv", b'id,name\n1,a\n2,"ends with a break\n"\n')
    assert event.state == "committed", event.error
    assert _rows(project) == [{"id": 1, "name": "a"}, {"id": 2, "name": "ends with a break\n"}]


def test_newlines_in_values_must_be_a_boolean(tmp_path: Path) -> None:
    # refused when the config loads, before any file arrives (item 12)
    with pytest.raises(ConfigError, match=r"icefloe.yaml:\d+: .*newlines_in_values' must be true or false"):
        _project(tmp_path, options={"newlines_in_values": "yes"})


def test_with_newlines_allowed_a_header_with_a_quote_open_at_the_end_is_dead(tmp_path: Path) -> None:
    project = _project(tmp_path, options={"newlines_in_values": True})
    event = _ingest(project, tmp_path, "q.csv", b'id,"name\n')
    assert event.state == "dead" and "landing:q.csv:1: the quote opened on line 1" in (event.error or ""), event.error


def test_with_newlines_allowed_values_spanning_lines_over_many_blocks_commit(tmp_path: Path) -> None:
    project = _project(tmp_path, batch_rows=1000, options={"newlines_in_values": True})
    data = b"id,name\n" + b"".join(b'%d,"line\nbreak %d"\n' % (i, i) for i in range(100_000))
    event = _ingest(project, tmp_path, "m.csv", data)
    assert event.state == "committed" and event.rows_out == 100_000, event.error
    assert project.sql("select count(*) as n from t.rows where name like 'line\nbreak %'").to_pylist() == [{"n": 100_000}]

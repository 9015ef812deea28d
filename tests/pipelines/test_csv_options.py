"""CSV read options `encoding` and `timestamp_format`, end to end."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import pytest

from icefloe.errors import ConfigError
from icefloe.pipelines.readers import read_batches
from tests.pipelines.csvproject import csv_project as _project
from tests.pipelines.csvproject import ingest_one as _ingest

UTC = dt.UTC


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("latin-1", "id,name\n1,café\n2,Müller\n".encode("latin-1")),
        ("cp1252", "id,name\n1,café\n2,Müller\n".encode("cp1252")),
        ("utf-16", "id,name\n1,café\n2,Müller\n".encode("utf-16")),
        ("utf-8", "\ufeffid,name\n1,café\n2,Müller\n".encode("utf-8")),
    ],
)
def test_declared_encoding_is_read_as_text(tmp_path: Path, encoding: str, data: bytes) -> None:
    project = _project(tmp_path, options={"encoding": encoding})
    event = _ingest(project, tmp_path, "e.csv.gz", gzip.compress(data))
    assert event.state == "committed", event.error
    assert project.sql("select id, name from t.rows order by id").to_pylist() == [
        {"id": 1, "name": "café"},
        {"id": 2, "name": "Müller"},
    ]


def test_without_encoding_latin_1_bytes_are_dead_with_their_position(tmp_path: Path) -> None:
    event = _ingest(_project(tmp_path), tmp_path, "e.csv", "id,name\n1,café\n".encode("latin-1"))
    assert event.state == "dead" and "landing:e.csv:2: invalid UTF-8: byte 0xe9" in (event.error or "")


@pytest.mark.parametrize(
    ("encoding", "data", "where"),
    [
        ("cp1252", b"id,name\n1,ok\n2,bad \x81 byte\n", "landing:e.csv:3: invalid cp1252 (the declared encoding): byte 0x81 at byte offset 19"),
        ("ascii", b"id,name\n1,ok\n2,caf\xe9\n", "landing:e.csv:3: invalid ascii (the declared encoding): byte 0xe9 at byte offset 18"),
    ],
)
def test_bytes_invalid_in_the_declared_encoding_are_dead_with_line_and_offset(
    tmp_path: Path, encoding: str, data: bytes, where: str
) -> None:
    event = _ingest(_project(tmp_path, options={"encoding": encoding}), tmp_path, "e.csv", data)
    assert event.state == "dead" and event.error_kind == "DataError"
    assert where in (event.error or ""), event.error


def test_an_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id\n1\n")
    with pytest.raises(ConfigError, match="unknown encoding 'latin-9000'"):
        list(read_batches(path, options={"encoding": "latin-9000"}))


def test_timestamp_format_reads_declared_and_inferred_timestamps(tmp_path: Path) -> None:
    schema = {"id": "long", "ts": "timestamp", "at_utc": "timestamptz"}
    project = _project(tmp_path, schema=schema, options={"timestamp_format": "%d/%m/%Y %H:%M"})
    data = b"id,ts,at_utc,seen\n1,05/01/2024 10:30,05/01/2024 10:30,31/12/2023 23:59\n2,,,\n"
    event = _ingest(project, tmp_path, "t.csv", data)
    assert event.state == "committed", event.error
    rows = project.sql("select id, ts, at_utc, seen from t.rows order by id").to_pylist()
    assert rows[0]["ts"] == dt.datetime(2024, 1, 5, 10, 30)
    assert rows[0]["at_utc"] == dt.datetime(2024, 1, 5, 10, 30, tzinfo=UTC)
    assert rows[0]["seen"] == dt.datetime(2023, 12, 31, 23, 59)  # inferred with the format too
    assert (rows[1]["ts"], rows[1]["at_utc"], rows[1]["seen"]) == (None, None, None)


def test_timestamp_format_may_be_a_list_tried_in_order(tmp_path: Path) -> None:
    formats = ["%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S%z"]
    project = _project(tmp_path, schema={"id": "long", "ts": "timestamptz"}, options={"timestamp_format": formats})
    event = _ingest(project, tmp_path, "t.csv", b"id,ts\n1,05/01/2024 10:30\n2,2024-01-05T12:00:00+0200\n")
    assert event.state == "committed", event.error
    assert project.sql("select ts from t.rows order by id").column("ts").to_pylist() == [
        dt.datetime(2024, 1, 5, 10, 30, tzinfo=UTC),
        dt.datetime(2024, 1, 5, 10, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize("dtype", ["timestamp", "timestamptz"])
def test_a_timestamp_not_matching_the_format_is_dead_at_its_line(tmp_path: Path, dtype: str) -> None:
    project = _project(tmp_path, schema={"id": "long", "ts": dtype}, options={"timestamp_format": "%d/%m/%Y %H:%M"})
    data = b"id,ts\n1,05/01/2024 10:30\n2,2024-01-05 10:30\n"
    event = _ingest(project, tmp_path, "t.csv", data)
    assert event.state == "dead" and event.error_kind == "DataError", event.error
    assert "landing:t.csv:3:" in (event.error or "") and "2024-01-05 10:30" in (event.error or "")


@pytest.mark.parametrize("value", ["", [], 5, ["%d", 3]])
def test_timestamp_format_must_be_a_format_or_a_list_of_them(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id\n1\n")
    with pytest.raises(ConfigError, match="timestamp_format"):
        list(read_batches(path, options={"timestamp_format": value}))


def test_a_bad_value_in_a_declared_encoding_file_is_dead_at_its_line(tmp_path: Path) -> None:
    project = _project(tmp_path, schema={"id": "long"}, options={"encoding": "latin-1"})
    data = "id,name\n1,café\n2,Müller\nx,Søren\n".encode("latin-1")
    event = _ingest(project, tmp_path, "e.csv.gz", gzip.compress(data))
    assert event.state == "dead", event.error
    assert "landing:e.csv.gz:4: column 'id': cannot convert 'x'" in (event.error or "")

"""A 0-byte file, or a CSV with only a header, is committed as zero rows: no data, no data files."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icefloe import Project
from tests.helpers import make_project

EMPTY = {
    "zero.csv": b"",
    "zero.csv.gz": gzip.compress(b""),
    "header.csv": b"id,name\n",
    "header-no-newline.csv": b"id,name",
    "header-crlf.csv": b"\xef\xbb\xbfid,name\r\n",
    "blank-lines.csv": b"\n\r\n\n",
    "zero.ndjson": b"",
    "zero.json": b"",
    "empty-array.json": b"[]",
    "zero.parquet": b"",
}


def _project(tmp_path: Path, mode: str = "append") -> Project:
    write: dict[str, Any] = {"table": "t.rows", "mode": mode}
    if mode == "upsert":
        write["key"] = ["id"]
    pipeline = {"read": {"schema": {"id": "long"}}, "write": write}
    return Project(make_project(tmp_path / "p", {"rows": pipeline}))


def _land(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _data_files(project: Project) -> int:
    return len(project.catalog.load_table("t.rows").inspect.files())


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_an_empty_file_commits_zero_rows_and_creates_no_table(tmp_path: Path, name: str) -> None:
    project = _project(tmp_path)
    (event,) = project.ingest([_land(tmp_path, name, EMPTY[name])])
    assert event.state == "committed" and event.rows_out == 0, event.error
    assert event.snapshot_id is None  # nothing was written: no table, no snapshot
    assert [t["table"] for t in project.tables()] == []


@pytest.mark.parametrize("mode", ["append", "upsert"])
@pytest.mark.parametrize("name", sorted(EMPTY))
def test_an_empty_file_adds_no_rows_and_no_data_files_to_a_table(tmp_path: Path, name: str, mode: str) -> None:
    project = _project(tmp_path, mode)
    project.ingest([_land(tmp_path, "first.csv", b"id,name\n1,a\n2,b\n")])
    before = _data_files(project)
    (event,) = project.ingest([_land(tmp_path, name, EMPTY[name])])
    assert event.state == "committed" and event.rows_out == 0, event.error
    assert project.sql("select count(*) as n from t.rows").to_pylist() == [{"n": 2}]
    assert _data_files(project) == before
    # the event's id is recorded in an empty snapshot, as exactly-once needs
    snapshot = project.catalog.load_table("t.rows").current_snapshot()
    assert snapshot is not None and event.id in snapshot.summary["icefloe.events"]
    assert snapshot.summary.get("added-data-files") is None


def test_an_empty_version_of_an_object_replaces_its_rows_with_none(tmp_path: Path) -> None:
    project = _project(tmp_path, "replace_source")
    project.ingest([_land(tmp_path, "a.csv", b"id,name\n1,a\n")])
    project.ingest([_land(tmp_path, "b.csv", b"id,name\n2,b\n")])
    (event,) = project.ingest([_land(tmp_path, "a.csv", b"id,name\n")])
    assert event.state == "committed" and event.rows_out == 0, event.error
    assert project.sql("select id from t.rows").to_pylist() == [{"id": 2}]


def test_a_parquet_file_with_no_rows_commits_zero_rows(tmp_path: Path) -> None:
    project = _project(tmp_path)
    path = tmp_path / "none.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), path)
    (event,) = project.ingest([path])
    assert event.state == "committed" and event.rows_out == 0, event.error

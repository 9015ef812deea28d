"""`batch.spill_writers`: a big event written as several data files at once, committed as one."""

from __future__ import annotations

from pathlib import Path

from icefloe import Project
from tests.helpers import csv_file, make_project

PIPELINE = {
    "read": {"format": "csv", "schema": {"id": "long", "v": "string"}, "batch_rows": 500},
    "batch": {"spill_bytes": "8KB", "spill_writers": 2},
    "write": {"table": "s.t"},
}


def _big(path: Path, n: int, tail: str | None = None) -> Path:
    return csv_file(path, "id,v", [f"{i},value-{i}" for i in range(n)] + ([tail] if tail else []))


def test_two_writers_write_two_files_with_every_row_once_in_one_snapshot(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": PIPELINE}))
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000)])
    assert event.state == "committed" and event.rows_out == 20_000
    got = project.sql("select count(*) as n, count(distinct id) as d, sum(id) as s from s.t").to_pylist()
    assert got == [{"n": 20_000, "d": 20_000, "s": sum(range(20_000))}]
    (snapshot,) = project.history("s.t")
    assert snapshot["events"] == [event.id]
    (table,) = project.tables()
    assert table["files"] == 2  # one per writer, not one per chunk


def test_a_bad_line_with_two_writers_leaves_no_rows_and_no_files(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"p": PIPELINE})
    project = Project(root)
    project.ingest([_big(tmp_path / "ok.csv", 10)])
    before = sorted((root / "warehouse").rglob("*.parquet"))
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000, tail="oops,x")])
    assert event.state == "dead" and "big.csv:20002" in (event.error or "")
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 10}]
    assert sorted((root / "warehouse").rglob("*.parquet")) == before


HOOK = """import pyarrow as pa
def grow(t):
    # from id 10000 on the rows carry a column the earlier ones lack
    if t.column("id")[0].as_py() < 10_000:
        return t
    return t.append_column("extra", pa.array(["e"] * t.num_rows, pa.large_string()))
"""


def test_a_column_added_midway_evolves_the_table_once_and_keeps_every_row(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"p": {**PIPELINE, "transform": [{"python": "hooks:grow"}]}})
    (root / "hooks.py").write_text(HOOK)
    project = Project(root)
    (event,) = project.ingest([_big(tmp_path / "big.csv", 20_000)])
    assert event.state == "committed", event.error
    got = project.sql("select count(*) as n, count(extra) as e, count(distinct id) as d from s.t").to_pylist()
    assert got == [{"n": 20_000, "e": 10_000, "d": 20_000}]
    (snapshot,) = [s for s in project.history("s.t") if s["events"]]
    assert snapshot["events"] == [event.id]

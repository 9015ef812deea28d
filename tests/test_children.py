"""Child tables (format xml `children`): written with their parent, exactly once, replaced with it.

A stand-in reader takes the place of the XML reader here, so these tests pin the engine's side of
the contract: batches tagged `icefloe.child` go to the child's table, children commit before the
parent, and a retry after a crash between the two never writes a child row twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from icefloe import Project
from icefloe.lake.writer import TableWriter
from icefloe.pipelines.readers import READERS, Source
from icefloe.pipelines.runner import CHILD_KEY
from tests.helpers import make_project

PIPELINE = {
    "read": {
        "format": "xml", "record": "case", "fields": {"id": {"path": "id", "type": "long"}},
        "children": {"tags": {"path": "tags/tag", "fields": {"tag": "."}}}, "batch_rows": 2,
    },
    "write": {"table": "u.cases", "mode": "replace_source", "children": {"tags": "u.tags"}},
}  # fmt: skip


def _lines_reader(source: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """`id:tag1,tag2` per line -> parent (id) and child (id, tag) batches, one pair per line."""
    assert options["record"] == "case" and "tags" in options["children"]
    with source.open() as stream:
        for line in stream.read().decode().split():
            ident, _, tags = line.partition(":")
            yield pa.RecordBatch.from_pydict({"id": [int(ident)]})
            names = [t for t in tags.split(",") if t]
            child = pa.schema([("id", pa.int64()), ("tag", pa.string())], metadata={CHILD_KEY: b"tags"})
            yield pa.RecordBatch.from_pydict({"id": [int(ident)] * len(names), "tag": names}, schema=child)


@pytest.fixture(autouse=True)
def _stand_in_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(READERS, "xml", _lines_reader)


def _project(tmp_path: Path, **pipeline: Any) -> Project:
    return Project(make_project(tmp_path / "p", {"cases": {**PIPELINE, **pipeline}}, maintenance={"enabled": False}))


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_child_rows_commit_to_their_own_table_with_the_parent_key(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (event,) = project.ingest([_file(tmp_path, "a.xml", "1:x,y 2: 3:z")])
    assert event.state == "committed"
    assert project.sql("select id from u.cases order by id").column("id").to_pylist() == [1, 2, 3]
    rows = project.sql("select id, tag, _icefloe_event as ev from u.tags order by id, tag").to_pylist()
    assert rows == [{"id": 1, "tag": "x", "ev": event.id}, {"id": 1, "tag": "y", "ev": event.id}, {"id": 3, "tag": "z", "ev": event.id}]
    assert [s["events"] for s in project.history("u.tags")] == [[event.id]]
    assert project.trace(event.id)["event"]["state"] == "committed"
    statuses = {r["name"] for r in project.status() if r["kind"] == "table"}
    assert statuses == {"u.cases", "u.tags"}


def test_a_relanded_object_replaces_its_child_rows_too(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.ingest([_file(tmp_path, "a.xml", "1:x,y 2:w")])
    project.ingest([_file(tmp_path, "b.xml", "7:q")])
    project.ingest([_file(tmp_path, "a.xml", "1:x")])
    assert project.sql("select id, tag from u.tags order by id, tag").to_pylist() == [{"id": 1, "tag": "x"}, {"id": 7, "tag": "q"}]
    assert project.sql("select count(*) as n from u.cases").to_pylist() == [{"n": 2}]


def test_crash_between_child_and_parent_commit_never_duplicates_child_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    real_commit, crashed = TableWriter.commit, []

    def commit(self: TableWriter, staged: list, *args: Any, **kwargs: Any) -> Any:
        if self.identifier == "u.cases" and not crashed:
            crashed.append(True)
            raise OSError("worker lost its disk right after the child commit")
        return real_commit(self, staged, *args, **kwargs)

    monkeypatch.setattr(TableWriter, "commit", commit)
    (event,) = project.ingest([_file(tmp_path, "a.xml", "1:x,y 2:z")])
    assert crashed and event.state == "committed" and event.attempts == 2
    assert project.sql("select count(*) as n from u.tags").to_pylist() == [{"n": 3}]
    assert project.sql("select count(*) as n from u.cases").to_pylist() == [{"n": 2}]
    assert len(project.history("u.tags")) == 1  # the retry found its id there and skipped the child


def test_children_of_a_big_event_are_spilled_and_committed_once(tmp_path: Path) -> None:
    project = _project(tmp_path, batch={"spill_bytes": "1KB"})
    text = " ".join(f"{i}:a{i},b{i}" for i in range(400))
    (event,) = project.ingest([_file(tmp_path, "big.xml", text)])
    assert event.state == "committed"
    assert project.sql("select count(*) as n, count(distinct id) as d from u.tags").to_pylist() == [{"n": 800, "d": 400}]
    assert project.sql("select count(*) as n from u.cases").to_pylist() == [{"n": 400}]
    detail = [s.detail for s in project.ledger.steps(event.id) if s.step == "staged"][-1]
    assert detail["rows_out"] == 400 and detail["rows_tags"] == 800


def test_child_tables_must_be_declared_on_both_sides(tmp_path: Path) -> None:
    from icefloe.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a table under write.children"):
        _project(tmp_path, write={"table": "u.cases", "mode": "append"})
    with pytest.raises(ConfigError, match="not upsert"):
        _project(tmp_path, write={"table": "u.cases", "mode": "upsert", "key": ["id"], "children": {"tags": "u.tags"}})
    with pytest.raises(ConfigError, match="only apply to format: xml"):
        Project(make_project(tmp_path / "q", {"c": {"read": {"format": "csv", "record": "x"}, "write": {"table": "u.c"}}}))


def test_an_event_whose_child_rows_the_child_table_refuses_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    project.ingest([_file(tmp_path, "a.xml", "1:x")])

    def numeric_tags(source: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pydict({"id": [2]})
        child = pa.schema([("id", pa.int64()), ("tag", pa.struct([("n", pa.int64())]))], metadata={CHILD_KEY: b"tags"})
        yield pa.RecordBatch.from_pydict({"id": [2], "tag": [{"n": 1}]}, schema=child)

    monkeypatch.setitem(READERS, "xml", numeric_tags)
    (event,) = project.ingest([_file(tmp_path, "b.xml", "ignored")])
    assert event.state == "dead" and "u.tags" in (event.error or "")
    assert project.sql("select count(*) as n from u.tags").to_pylist() == [{"n": 1}]
    assert project.sql("select count(*) as n from u.cases").to_pylist() == [{"n": 1}]

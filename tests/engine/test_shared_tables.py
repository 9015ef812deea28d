"""Two pipelines writing one table: each keeps its own mode, and commits follow landing order."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_USAGE, main
from icefloe.errors import ConfigError
from icefloe.ledger import Event
from icefloe.pipelines.runner import EventOutput, PipelineRunner
from tests.helpers import csv_file, make_project

SCHEMA = {"id": "long", "v": "string"}
BASE = {"read": {"format": "csv", "schema": SCHEMA}, "write": {"table": "t.mix"}}
CHANGES = {"read": {"format": "csv", "schema": SCHEMA}, "write": {"table": "t.mix", "mode": "upsert", "key": ["id"]}}
ROUTES = [
    {"source": "landing", "match": "*base*.csv", "pipeline": "base"},
    {"source": "landing", "match": "*up*.csv", "pipeline": "changes"},
]


def _project(root: Path, upsert_first: bool) -> Project:
    pipelines = {"changes": CHANGES, "base": BASE} if upsert_first else {"base": BASE, "changes": CHANGES}
    return Project(make_project(root, pipelines, ROUTES))


def _rows(project: Project) -> list[tuple[int, str]]:
    return [(r["id"], r["v"]) for r in project.sql("select id, v from t.mix order by id, v").to_pylist()]


def _operations(project: Project) -> list[str]:
    table = project.catalog.load_table("t.mix")
    return [s.summary.operation.value for s in table.snapshots() if s.summary is not None]


@pytest.mark.parametrize("upsert_first", [False, True], ids=["append-listed-first", "upsert-listed-first"])
def test_each_pipeline_writes_in_its_own_mode(tmp_path: Path, upsert_first: bool) -> None:
    project = _project(tmp_path / "p", upsert_first)
    base = csv_file(tmp_path / "base1.csv", "id,v", ["1,a", "2,a", "3,a", "4,a"])
    up = csv_file(tmp_path / "up1.csv", "id,v", ["2,b", "3,b", "5,b"])
    assert [e.state for e in project.ingest([base])] == ["committed"]
    assert [e.state for e in project.ingest([up])] == ["committed"]
    assert _rows(project) == [(1, "a"), (2, "b"), (3, "b"), (4, "a"), (5, "b")]  # 5 rows, 5 ids
    more = csv_file(tmp_path / "base2.csv", "id,v", ["4,z"])
    assert [e.state for e in project.ingest([more])] == ["committed"]
    assert _rows(project) == [(1, "a"), (2, "b"), (3, "b"), (4, "a"), (4, "z"), (5, "b")]  # appended, not upserted
    # the append pipeline appended, the upsert pipeline replaced rows (an overwrite snapshot)
    assert _operations(project) == ["append", "overwrite", "append"]


@pytest.mark.parametrize("upsert_first", [False, True], ids=["append-listed-first", "upsert-listed-first"])
def test_one_batch_of_both_pipelines_commits_in_landing_order(tmp_path: Path, upsert_first: bool) -> None:
    project = _project(tmp_path / "p", upsert_first)
    files = [
        csv_file(tmp_path / "a_base.csv", "id,v", ["1,a", "2,a"]),
        csv_file(tmp_path / "b_up.csv", "id,v", ["2,b"]),
        csv_file(tmp_path / "c_base.csv", "id,v", ["2,c", "3,c"]),  # appended after the upsert: id 2 twice
        csv_file(tmp_path / "d_up.csv", "id,v", ["3,d"]),  # then upserted again
    ]
    events = project.ingest(files)  # landed one after another, processed and committed as one batch
    assert [e.state for e in events] == ["committed"] * 4
    assert _rows(project) == [(1, "a"), (2, "b"), (2, "c"), (3, "d")]
    assert _operations(project) == ["append", "overwrite", "append", "overwrite"]
    # each snapshot names exactly the events it committed
    history = project.history("t.mix")
    assert [len(h["events"]) for h in history] == [1, 1, 1, 1]


HEADER = """\
sources:
  landing: {type: folder, path: landing}
routes:
  - {source: landing, match: "*.csv", pipeline: [first, second]}
pipelines:
  first:
    read: {format: csv, schema: {id: long, v: string, ts: timestamp}}
    write: {table: t.mix, mode: upsert, key: [id], partition: ["day(ts)"]}
  second:
"""


def _refused(tmp_path: Path, second: str) -> str:
    root = make_project(tmp_path / "p", {})
    (root / "icefloe.yaml").write_text(HEADER + second)
    with pytest.raises(ConfigError) as err:
        Project(root)
    return str(err.value)


def test_two_upsert_keys_on_one_table_are_refused_at_load(tmp_path: Path) -> None:
    message = _refused(tmp_path, """\
    read: {format: csv, schema: {id: long, v: string, ts: timestamp}}
    write:
      table: t.mix
      mode: upsert
      key: [v]
""")  # fmt: skip
    assert "icefloe.yaml:14: pipelines.second.write.key: t.mix is upserted by key ['id']" in message
    assert "one table has one key" in message


def test_two_partition_specs_on_one_table_are_refused_at_load(tmp_path: Path) -> None:
    message = _refused(tmp_path, """\
    read: {format: csv, schema: {id: long, v: string, ts: timestamp}}
    write:
      table: t.mix
      partition: ["hour(ts)"]
""")  # fmt: skip
    assert "icefloe.yaml:13: pipelines.second.write.partition: t.mix is partitioned by ['day(ts)']" in message


def test_a_pipeline_without_the_upsert_key_on_an_upserted_table_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, """\
    read:
      format: csv
      schema: {v: string}
    write: {table: t.mix}
""")  # fmt: skip
    assert "icefloe.yaml:12: pipelines.second.read.schema: this pipeline writes t.mix, which pipeline first" in message
    assert "upserts by key ['id']" in message


def test_the_cli_exits_2_on_a_table_it_cannot_honour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {})
    (root / "icefloe.yaml").write_text(HEADER + "    write: {table: t.mix, mode: upsert, key: [v]}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--once", "-p", str(root)])
    assert exit_.value.code == EXIT_USAGE
    assert "icefloe.yaml:10: pipelines.second.write.key" in capsys.readouterr().err


def test_a_retrying_upsert_holds_back_a_newer_append_to_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = {"base": BASE, "changes": {**CHANGES, "retry": {"backoff": "20ms", "max_backoff": "20ms"}}}
    project = Project(make_project(tmp_path / "p", pipelines, ROUTES))
    real_run, failures = PipelineRunner.run, []

    def flaky(self: PipelineRunner, event: Event, *args: object, **kwargs: object) -> EventOutput:
        if self.name == "changes" and not failures:
            failures.append(event.id)
            raise OSError("the disk hiccuped")  # transient: the event retries
        return real_run(self, event, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PipelineRunner, "run", flaky)
    up = csv_file(tmp_path / "up1.csv", "id,v", ["1,b"])
    base = csv_file(tmp_path / "base1.csv", "id,v", ["1,a"])
    events = project.ingest([up, base])  # the upsert landed first, and fails once
    assert [e.state for e in events] == ["committed", "committed"] and failures == [events[0].id]
    # landing order held: the upsert committed before the newer append, so both rows remain
    assert [h["events"] for h in project.history("t.mix")] == [[events[0].id], [events[1].id]]
    assert _rows(project) == [(1, "a"), (1, "b")]

"""A query that names a missing table, or a time with no snapshot left, says which and why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_NOT_FOUND, main
from icefloe.errors import IcefloeError, NotFoundError
from tests.helpers import csv_file, make_project

INFERRED = {"read": {"format": "csv"}, "write": {"table": "t.x"}}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(make_project(tmp_path / "p", {"x": INFERRED}, maintenance={"keep_snapshots": 1}))
    project.ingest([csv_file(tmp_path / "a.csv", "id", ["1"])])
    return project


def _ingest_more(project: Project, tmp_path: Path, n: int) -> None:
    for i in range(n):
        project.ingest([csv_file(tmp_path / f"b{i}.csv", "id", [str(i + 2)])])


@pytest.mark.parametrize(
    "sql", ["select * from t.nope", "select * from t.x join t.nope using (id)", "select * from T.NOPE"]
)
def test_a_missing_table_is_named_with_the_tables_there_are(project: Project, sql: str) -> None:
    with pytest.raises(NotFoundError, match=r"^no table (t\.nope|T\.NOPE); tables: icefloe\.events, t\.x$"):
        project.sql(sql)


def test_an_unqualified_name_is_reported_as_a_missing_table(project: Project) -> None:
    with pytest.raises(NotFoundError, match=r"^no table x; tables: icefloe\.events, t\.x$"):
        project.sql("with w as (select 1 as one) select * from w, x")


def test_cli_says_which_table_is_missing_and_exits_not_found(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sql", "-p", str(project.root), "select * from t.nope"])
    assert exit_info.value.code == EXIT_NOT_FOUND
    assert capsys.readouterr().err.strip() == "error: no table t.nope; tables: icefloe.events, t.x"


def test_other_catalog_errors_stay_query_errors(project: Project) -> None:
    with pytest.raises(IcefloeError, match="Scalar Function with name nosuchfn") as info:
        project.sql("select nosuchfn(id) from t.x")
    assert not isinstance(info.value, NotFoundError)


def test_as_of_before_the_table_was_created_says_so(project: Project) -> None:
    created = project.catalog.load_table("t.x").metadata.metadata_log[0].timestamp_ms
    with pytest.raises(
        NotFoundError, match=r"^t\.x did not exist at 2000-01-01T00:00:00: it was created at 20\d\d-"
    ) as info:
        project.sql("select * from t.x", as_of="2000-01-01T00:00:00")
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created / 1000)) in str(info.value)


def test_as_of_in_history_that_maintenance_expired_says_expired(project: Project, tmp_path: Path) -> None:
    time.sleep(0.01)
    between = int(time.time() * 1000)  # after the first commit, before the others
    time.sleep(0.01)
    _ingest_more(project, tmp_path, 7)
    assert project.sql("select count(*) as n from t.x", as_of=between).to_pylist() == [{"n": 1}]
    project.maintain("t.x")
    with pytest.raises(
        NotFoundError,
        match=r"^t\.x: the snapshots current at \d{13} \(20\d\d-.*\) were expired by the maintenance policy \(keep_snapshots / keep_for\); the oldest kept is \d+ from 20",
    ):
        project.sql("select count(*) as n from t.x", as_of=between)


def test_as_of_before_the_first_commit_after_expiry_is_not_blamed_on_expiry(project: Project, tmp_path: Path) -> None:
    # enough commits that the table's metadata log no longer reaches its creation: the ledger's
    # first commit to the table is what tells "did not exist" from "expired"
    _ingest_more(project, tmp_path, 7)
    project.maintain("t.x")
    assert (
        not project.catalog.load_table("t.x")
        .metadata.metadata_log[0]
        .metadata_file.rsplit("/", 1)[1]
        .startswith("00000-")
    )
    with pytest.raises(
        NotFoundError, match=r"^t\.x did not exist yet at 2000-01-01T00:00:00: icefloe first committed to it at 20"
    ):
        project.sql("select * from t.x", as_of="2000-01-01T00:00:00")

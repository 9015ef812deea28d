"""The embedded core with the catalog in PostgreSQL instead of SQLite (same pipeline, same tests)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from icefloe import Project
from tests.conftest import require_service
from tests.helpers import csv_file, make_project

pytestmark = pytest.mark.service
PG = "postgresql://postgres@127.0.0.1:5432/test"


def test_ingest_and_query_with_a_postgresql_catalog(tmp_path: Path) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    pipeline = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": f"{namespace}.orders", "mode": "upsert", "key": ["id"]}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}, catalog=PG))
    try:
        (first,) = project.ingest([csv_file(tmp_path / "a.csv", "id,v", ["1,a", "2,b"])])
        (second,) = project.ingest([csv_file(tmp_path / "b.csv", "id,v", ["2,B", "3,c"])])
        assert first.state == second.state == "committed"
        rows = project.sql(f"select id, v from {namespace}.orders order by id").to_pylist()
        assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
        with Project(tmp_path / "p") as again:  # a second process sees the same catalog
            assert [t["table"] for t in again.tables() if t["table"].startswith(namespace)] == [f"{namespace}.orders"]
    finally:
        project.catalog.purge_table(f"{namespace}.orders")
        project.catalog.drop_namespace(namespace)
        project.close()


def test_maintenance_with_a_postgresql_catalog(tmp_path: Path) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    pipeline = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": f"{namespace}.orders"}}
    maintenance = {"keep_snapshots": 1, "compact_min_files": 2, "every_commits": 1000}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}, catalog=PG, maintenance=maintenance))
    try:
        for i in range(4):
            (event,) = project.ingest([csv_file(tmp_path / f"f{i}.csv", "id,v", [f"{i},x"])])
            assert event.state == "committed"
        (report,) = project.maintain(f"{namespace}.orders")
        assert report["files_compacted"] == 4 and report["files_written"] == 1 and report["expired_snapshots"] >= 3
        assert project.sql(f"select sum(id) as s, count(*) as n from {namespace}.orders").to_pylist() == [{"s": 6, "n": 4}]
        health = project.table_health(f"{namespace}.orders")
        assert health["data_files"] == 1 and health["last_maintained"] is not None
    finally:
        project.catalog.purge_table(f"{namespace}.orders")
        project.catalog.drop_namespace(namespace)
        project.close()

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

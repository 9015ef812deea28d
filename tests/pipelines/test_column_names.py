"""Column names that differ only in case are refused in every format: DuckDB would read one as the other."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icefloe import Project
from tests.helpers import make_project


@pytest.mark.parametrize("fmt", ["ndjson", "json", "parquet"])
def test_columns_differing_only_in_case_are_dead(tmp_path: Path, fmt: str) -> None:
    project = Project(make_project(tmp_path / "p", {"rows": {"read": {"format": fmt}, "write": {"table": "t.rows"}}}))
    path = tmp_path / f"c.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"id": [1], "Name": ["a"], "name": ["b"]}), path)
    else:
        path.write_text('{"id": 1, "Name": "a", "name": "b"}\n' if fmt == "ndjson" else '[{"id": 1, "Name": "a", "name": "b"}]')
    (event,) = project.ingest([path])
    assert event.state == "dead" and event.error_kind == "DataError", event.error
    assert f"landing:c.{fmt}: the file has columns 'Name' and 'name', which differ only in case" in (event.error or "")

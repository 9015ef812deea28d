"""A one-pipeline CSV project and a one-file ingest, for the CSV reader's end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icefloe import Project
from tests.helpers import make_project


def csv_project(tmp_path: Path, **read: Any) -> Project:
    pipeline = {"read": {"format": "csv", **read}, "write": {"table": "t.rows"}}
    return Project(make_project(tmp_path / "p", {"rows": pipeline}))


def ingest_one(project: Project, tmp_path: Path, name: str, data: bytes) -> Any:
    path = tmp_path / name
    path.write_bytes(data)
    (event,) = project.ingest([path])
    return event

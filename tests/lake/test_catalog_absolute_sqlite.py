"""An absolute SQLite catalog path gets its folder made, as a relative one does."""

from __future__ import annotations

from pathlib import Path

from icefloe.lake import open_catalog


def test_absolute_sqlite_catalog_folder_is_made(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    folder = tmp_path / "elsewhere" / "deeper"
    catalog = open_catalog(f"sqlite:///{folder}/catalog.db", "warehouse", project)
    catalog.create_namespace("t")
    assert (folder / "catalog.db").is_file()
    assert [ns for ns in catalog.list_namespaces()] == [("t",)]

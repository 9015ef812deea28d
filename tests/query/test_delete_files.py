"""Queries stay correct when a table has position-delete files (written by another engine).

pyiceberg 0.12 writes copy-on-write only, so the delete file here is added by hand, the way a
merge-on-read writer (Spark, Trino) would: a Parquet file of (file_path, pos) in a delete manifest.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestWriterV2,
)
from pyiceberg.table import Table
from pyiceberg.typedef import Record

from icefloe import Project
from icefloe.query import QueryEngine
from tests.helpers import ORDERS, csv_file, make_project


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


def add_position_deletes(table: Table, data_path: str, positions: list[int]) -> None:
    path = f"{table.location()}/data/deletes-{uuid.uuid4()}.parquet"
    local = path.removeprefix("file://")
    pq.write_table(pa.table({"file_path": [data_path] * len(positions), "pos": pa.array(positions, pa.int64())}), local)
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES, file_path=path, file_format=FileFormat.PARQUET, partition=Record(),
        record_count=len(positions), file_size_in_bytes=Path(local).stat().st_size, spec_id=table.spec().spec_id,
    )  # fmt: skip
    with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
        written = append._manifests

        def with_deletes() -> list[Any]:
            writer = _DeleteManifestWriter(
                tx.table_metadata.spec(), tx.table_metadata.schema(), append.new_manifest_output(), append._snapshot_id, "zstandard"
            )
            with writer:
                writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=append._snapshot_id, data_file=delete_file))
            return [*written(), writer.to_manifest_file()]

        append._manifests = with_deletes  # type: ignore[method-assign]


def test_rows_deleted_by_position_are_not_returned(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    project.ingest([csv_file(tmp_path / "a.csv", "id,ts,amount", [f"{i},2026-01-01 00:00:00,1" for i in range(10)])])
    table = project.catalog.load_table("sales.orders")
    (task,) = list(table.scan().plan_files())
    add_position_deletes(table, task.file.file_path, [2, 5])
    with QueryEngine(project.runtime) as engine:
        rows = engine.query("select count(*) as n, list(id order by id) as ids from sales.orders").to_pylist()
    assert rows == [{"n": 8, "ids": [0, 1, 3, 4, 6, 7, 8, 9]}]
    # the same Parquet file read directly still holds all ten rows: the view honoured the deletes
    assert pq.read_table(task.file.file_path.removeprefix("file://")).num_rows == 10

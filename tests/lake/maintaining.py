"""What the table maintenance tests (tests/lake/test_maintain_*.py) share: a table `s.t` of small
commits, its rows and data files, and a policy that compacts from two files on."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter
from icefloe.lake.maintain import MaintenancePolicy
from icefloe.lake.maintain_files import live_entries

T = "s.t"
ONLY_COMPACT = ("compact",)


def staged(n: int, rows: int = 3, source: str | None = None, p: str | None = None) -> Staged:
    """Event `e<n>`: `rows` rows with ids n*100, n*100+1, ... (and partition value `p`)."""
    ids = list(range(n * 100, n * 100 + rows))
    data = {"id": ids, "v": [f"row{i}" for i in ids]}
    if p is not None:
        data["p"] = [p] * rows
    source = source or f"src:{n}"
    return Staged(f"e{n}", source, pa.table({**data, "_icefloe_event": [f"e{n}"] * rows, "_icefloe_source": [source] * rows}))


def commit_each(catalog: Catalog, numbers: range, **config: object) -> TableWriter:
    """One commit (one snapshot, one small data file) per number."""
    writer = TableWriter(catalog, WriteConfig(table=T, **config))  # type: ignore[arg-type]
    for n in numbers:
        writer.commit([staged(n)])
    return writer


def ids_of(table: Table, snapshot_id: int | None = None) -> list[int]:
    return sorted(table.scan(snapshot_id=snapshot_id).to_arrow()["id"].to_pylist())


def data_paths(table: Table) -> set[str]:
    return {e.data_file.file_path for e in live_entries(table)[0]}


def local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def policy(**overrides: object) -> MaintenancePolicy:
    # orphans younger than an hour stay: a test's own fresh files are never swept by accident
    return MaintenancePolicy(**{"compact_min_files": 2, "orphan_min_age": 3600.0, **overrides})  # type: ignore[arg-type]

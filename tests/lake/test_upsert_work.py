"""What an upsert costs grows with the files and rows it touches, not with the batch's chunks, the
manifests it plans with, or the files it writes (bench 16: 100k keys into 200 files)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.avro.file import AvroFileHeader
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table
from pyiceberg.types import LongType, StringType

import icefloe.lake.upsert as upsert_module
from icefloe.lake import open_catalog, parquet
from icefloe.lake.compat import _ManifestAvroFile
from icefloe.lake.evolve import align_to_table, nullable
from icefloe.lake.upsert import UpsertResult, upsert
from tests.query.test_delete_files import add_position_deletes

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.int64())])


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _rows(ids: range, tag: str) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.int64()), "name": [f"{tag}-{i:07d}" for i in ids], "amount": pa.array([i * 7 for i in ids], pa.int64())}
    )


def _table(catalog: Catalog, name: str, files: int, per: int) -> Table:
    """`files` data files of `per` rows, ids 0.., one append (manifest) each."""
    catalog.create_namespace_if_not_exists("s")
    table = catalog.create_table(f"s.{name}", schema=nullable(SCHEMA))
    for n in range(files):
        table.append(align_to_table(_rows(range(n * per, (n + 1) * per), "old"), table.schema()))
    return catalog.load_table(f"s.{name}")


def _upsert(table: Table, data: pa.Table) -> UpsertResult:
    with table.transaction() as tx:
        return upsert(tx, align_to_table(data, table.schema()), ["id"], snapshot_properties={"icefloe.events": "e"})


def _one_key_per_file(files: int, per: int) -> pa.Table:
    return _rows(range(per // 2, files * per, per), "new")


@contextmanager
def _allocations() -> Iterator[pa.MemoryPool]:
    """Every Arrow allocation made meanwhile, counted (the pool is the process default)."""
    default = pa.default_memory_pool()
    proxy = pa.proxy_memory_pool(default)
    pa.set_memory_pool(proxy)
    try:
        yield proxy
    finally:
        pa.set_memory_pool(default)


def test_a_batch_in_many_chunks_costs_what_the_same_batch_in_one_does(catalog: Catalog) -> None:
    # each file's rows were taken from the batch's columns as they came, and a take from a
    # chunked column concatenates all its chunks first: the whole batch copied once per file
    files, per = 60, 25
    batch = _rows(range(20_000), "new")  # every key of every file, and many new ones
    chunked = pa.Table.from_batches(batch.to_batches(max_chunksize=50))
    assert chunked.column(0).num_chunks > 20
    spent = {}
    for name, data in (("whole", batch.combine_chunks()), ("chunked", chunked)):
        table = _table(catalog, name, files, per)
        with _allocations() as pool:
            result = _upsert(table, data)
        assert result.files_rewritten == files
        spent[name] = pool.total_bytes_allocated()
    # (measured: 1.02x; before, 2.1x: 60 copies of the batch's columns)
    assert spent["chunked"] < 1.3 * spent["whole"], spent
    rows = {name: catalog.load_table(f"s.{name}").scan().to_arrow().sort_by("id").to_pylist() for name in spent}
    assert rows["chunked"] == rows["whole"]


def test_the_plain_encoded_columns_are_judged_once_per_upsert(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    # judging counts distinct values of a 64k-row sample of every column: per written file it cost
    # as much as encoding the files
    table = _table(catalog, "t", files=6, per=2000)
    monkeypatch.setattr(upsert_module, "_CHUNK_BYTES", 64 << 10)  # many small files written
    monkeypatch.setattr(upsert_module, "_MIN_PIECE_BYTES", 16 << 10)
    judged: list[int] = []
    real = parquet.plain_columns

    def counted(*args: Any) -> list[str]:
        judged.append(1)
        return real(*args)

    monkeypatch.setattr(parquet, "plain_columns", counted)
    _upsert(table, _one_key_per_file(6, 2000))
    after = catalog.load_table("s.t")
    summary = after.current_snapshot().summary  # type: ignore[union-attr]
    assert int(summary["added-data-files"]) > 2
    assert judged == [1]
    assert after.scan().to_arrow().num_rows == 6 * 2000


def test_planning_resolves_the_manifest_schema_once_not_per_manifest(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(catalog, "t", files=12, per=50)  # 12 appends: 12 manifests of one schema
    resolved: list[int] = []
    real = AvroFileHeader.get_schema

    def counted(self: AvroFileHeader) -> Any:
        resolved.append(1)
        return real(self)

    monkeypatch.setattr(AvroFileHeader, "get_schema", counted)
    monkeypatch.setattr(_ManifestAvroFile, "_resolved", OrderedDict())  # nothing resolved by earlier tests
    result = _upsert(table, _one_key_per_file(12, 50))
    assert result.files_rewritten == 12
    # the manifest list (read while planning and again to commit) and one manifest schema;
    # pyiceberg resolves every manifest's anew (12 more)
    assert len(resolved) <= 3, len(resolved)
    assert catalog.load_table("s.t").scan().to_arrow().num_rows == 12 * 50


def test_files_are_read_directly_unless_they_need_pyicebergs_scan(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(catalog, "t", files=3, per=10)  # ids 0..29
    # a file with position deletes, and files written before a column was added, need the scan
    (first,) = [t for t in table.scan().plan_files() if from_bytes(LongType(), t.file.lower_bounds[1]) == 0]  # ids 0..9
    add_position_deletes(catalog.load_table("s.t"), first.file.file_path, [1])
    table = catalog.load_table("s.t")
    scanned: list[str] = []
    real = ArrowScan.to_table

    def counted(self: ArrowScan, tasks: Any) -> pa.Table:
        tasks = list(tasks)
        scanned.extend(t.file.file_path for t in tasks)
        return real(self, tasks)

    monkeypatch.setattr(ArrowScan, "to_table", counted)
    before = {t.file.file_path: len(t.delete_files) for t in table.scan().plan_files()}
    _upsert(table, _rows(range(0, 30, 2), "new"))  # keys in every file
    assert set(scanned) == {path for path, deletes in before.items() if deletes}
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table("s.t")
    table.append(align_to_table(pa.table({"id": pa.array([40, 41], pa.int64()), "name": ["x", "y"], "amount": pa.array([1, 2]),
                                           "note": ["n", None]}), table.schema()))  # fmt: skip
    table = catalog.load_table("s.t")
    scanned.clear()
    old = {t.file.file_path for t in table.scan().plan_files() if t.file.record_count != 2}
    data = pa.table({"id": pa.array([1, 3, 40], pa.int64()), "name": ["a", "b", "c"], "amount": pa.array([0, 0, 0]), "note": ["p", "q", "r"]})
    _upsert(table, data)
    assert set(scanned) == old  # the file written with the column is read directly
    rows = {r["id"]: (r["name"], r["note"]) for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()}
    assert rows[40] == ("c", "r") and rows[41] == ("y", None) and rows[1] == ("a", "p") and rows[5] == ("old-0000005", None)
    assert len(rows) == 29 + 2 + 1  # id 1 was deleted by position, then upserted back

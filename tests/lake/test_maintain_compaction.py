"""Compaction: small files replaced by fewer files holding the same rows, within the target size,
sorted, per partition, through the current schema, and never where delete files are."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Operation

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter
from icefloe.lake.maintain import maintain
from icefloe.lake.maintain_files import live_entries
from tests.lake.maintaining import ONLY_COMPACT, T, commit_each, data_paths, ids_of, local, policy, staged
from tests.query.test_delete_files import add_position_deletes


def test_compaction_replaces_small_files_with_one_file_holding_the_same_rows(catalog: Catalog) -> None:
    commit_each(catalog, range(10))
    before = catalog.load_table(T)
    rows = ids_of(before)
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (10, 1)
    assert len(data_paths(table)) == 1 and ids_of(table) == rows
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.operation == Operation.REPLACE
    assert snapshot.summary["icefloe.maintenance"] == "compact"
    assert snapshot.summary["icefloe.events"] is None  # brings no events: the exactly-once check ignores it
    assert snapshot.summary["total-records"] == "30" and snapshot.summary["total-data-files"] == "1"


def test_compaction_skips_partitions_with_too_few_small_files_and_files_that_are_not_small(catalog: Catalog) -> None:
    commit_each(catalog, range(5))
    assert maintain(catalog, T, policy(compact_min_files=6), actions=ONLY_COMPACT).files_compacted == 0
    assert maintain(catalog, T, policy(small_file_bytes=100), actions=ONLY_COMPACT).files_compacted == 0
    assert len(catalog.load_table(T).metadata.snapshots) == 5


def test_compaction_packs_files_into_bins_no_bigger_than_the_target(catalog: Catalog) -> None:
    commit_each(catalog, range(9))
    size = max(e.data_file.file_size_in_bytes for e in live_entries(catalog.load_table(T))[0])
    report = maintain(catalog, T, policy(target_file_bytes=3 * size + 10, small_file_bytes=size + 1), actions=ONLY_COMPACT)
    assert (report.files_compacted, report.files_written) == (9, 3)
    assert len(ids_of(catalog.load_table(T))) == 27


def test_a_big_file_joins_a_rewrite_only_when_the_small_ones_outweigh_it(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T))
    writer.commit([staged(0, rows=2000)])
    big = data_paths(catalog.load_table(T))
    for n in range(1, 6):
        writer.commit([staged(n)])
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert report.files_compacted == 5  # the 2,000-row file stays as it is
    assert len(big & data_paths(table)) == 1 and len(ids_of(table)) == 2015


def test_compaction_with_sort_by_writes_rows_in_order(catalog: Catalog) -> None:
    commit_each(catalog, range(5, 0, -1))
    maintain(catalog, T, policy(sort_by=("id",)), actions=ONLY_COMPACT)
    (path,) = data_paths(catalog.load_table(T))
    ids = pq.read_table(local(path))["id"].to_pylist()
    assert ids == sorted(ids) and len(ids) == 15


def test_compaction_of_a_partitioned_table_keeps_each_partition_apart(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T, partition=["p"]))
    for n in range(8):
        writer.commit([staged(n, p="a" if n % 2 else "b")])
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (8, 2)
    for entry in live_entries(table)[0]:
        (value,) = entry.data_file.partition
        assert f"/p={value}/" in entry.data_file.file_path
        assert set(pq.read_table(local(entry.data_file.file_path))["p"].to_pylist()) == {value}
    assert len(ids_of(table)) == 24


def test_compaction_reads_older_files_through_the_current_schema(catalog: Catalog) -> None:
    writer = commit_each(catalog, range(3))
    extra = staged(3)
    writer.commit([Staged(extra.event_id, extra.source_ref, extra.data.append_column("note", pa.array(["x"] * 3)))])
    maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    rows = table.scan().to_arrow().sort_by("id")
    assert len(data_paths(table)) == 1
    assert rows["note"].to_pylist() == [None] * 9 + ["x"] * 3 and rows["v"].to_pylist()[0] == "row0"


def test_compaction_leaves_partitions_with_delete_files_alone(catalog: Catalog) -> None:
    commit_each(catalog, range(4))
    table = catalog.load_table(T)
    add_position_deletes(table, sorted(data_paths(table))[0], [0])
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    assert report.files_compacted == 0
    assert any("delete files" in note for note in report.notes)
    assert len(ids_of(catalog.load_table(T))) == 11

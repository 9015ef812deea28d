"""TableWriter against a real SQLite catalog and local warehouse."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from icefloe.config import WriteConfig
from icefloe.errors import SchemaError
from icefloe.lake import Staged, TableWriter, committed_event_ids, open_catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, source: str, rows: dict[str, list], landed_at: float = 0.0) -> Staged:
    n = len(next(iter(rows.values())))
    data = pa.table({**rows, "_icefloe_event": [event] * n, "_icefloe_source": [source] * n})
    return Staged(event, source, data, landed_at)


def _rows(catalog: Catalog, table: str, sort: str = "id") -> list[dict]:
    return sorted(catalog.load_table(table).scan().to_arrow().drop_columns(["_icefloe_event", "_icefloe_source"]).to_pylist(), key=lambda r: r[sort])


def test_append_creates_table_and_records_event_ids_in_the_snapshot(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    snapshot, done = writer.commit([_staged("e1", "src:a", {"id": [1, 2]}), _staged("e2", "src:b", {"id": [3]})])
    assert done == ["e1", "e2"]
    table = catalog.load_table("s.t")
    assert committed_event_ids(table) == {"e1": snapshot, "e2": snapshot}
    assert [r["id"] for r in _rows(catalog, "s.t")] == [1, 2, 3]


def test_committing_the_same_events_again_writes_nothing(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit([_staged("e1", "src:a", {"id": [1, 2]})])
    snapshot, done = writer.commit([_staged("e1", "src:a", {"id": [1, 2]}), _staged("e2", "src:b", {"id": [3]})])
    assert done == ["e2"]
    assert [r["id"] for r in _rows(catalog, "s.t")] == [1, 2, 3]


def test_upsert_updates_by_key_and_newest_duplicate_wins(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="upsert", key=["id"]))
    writer.commit([_staged("e1", "src:a", {"id": [1, 2], "v": ["a", "b"]})])
    writer.commit([_staged("e2", "src:b", {"id": [2, 3, 3], "v": ["B", "c", "C"]})])
    assert _rows(catalog, "s.t") == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "C"}]


def test_replace_source_swaps_only_the_rows_of_the_relanded_object(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="replace_source"))
    writer.commit([_staged("e1", "src:a", {"id": [1, 2]}), _staged("e2", "src:b", {"id": [10]})])
    writer.commit([_staged("e3", "src:a", {"id": [5]})])
    assert [r["id"] for r in _rows(catalog, "s.t")] == [5, 10]


def test_replace_source_in_one_batch_keeps_only_the_newest_version(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="replace_source"))
    writer.commit([_staged("old", "src:a", {"id": [1]}, 1.0), _staged("new", "src:a", {"id": [2]}, 2.0)])
    assert [r["id"] for r in _rows(catalog, "s.t")] == [2]
    assert set(committed_event_ids(catalog.load_table("s.t"))) == {"old", "new"}


def test_overwrite_replaces_the_whole_table(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="overwrite"))
    writer.commit([_staged("e1", "src:a", {"id": [1, 2]})])
    writer.commit([_staged("e2", "src:b", {"id": [7]})])
    assert [r["id"] for r in _rows(catalog, "s.t")] == [7]


def test_new_columns_and_safe_promotions_evolve_the_schema(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit([_staged("e1", "src:a", {"id": pa.array([1], pa.int32())})])
    writer.commit([_staged("e2", "src:b", {"id": pa.array([2**40], pa.int64()), "extra": ["x"]})])
    table = catalog.load_table("s.t")
    assert str(table.schema().find_field("id").field_type) == "long"
    assert _rows(catalog, "s.t") == [{"id": 1, "extra": None}, {"id": 2**40, "extra": "x"}]


def test_incompatible_type_change_is_a_schema_error_and_the_table_is_untouched(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit([_staged("e1", "src:a", {"id": [1]})])
    with pytest.raises(SchemaError, match="'id'"):
        writer.commit([_staged("e2", "src:b", {"id": ["not a number"]})])
    assert [r["id"] for r in _rows(catalog, "s.t")] == [1]


def test_partition_spec_from_config(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t", partition=["day(ts)", "bucket(4, id)"]))
    import datetime as dt

    writer.commit([_staged("e1", "src:a", {"id": [1], "ts": [dt.datetime(2026, 1, 1)]})])
    fields = [(f.name, str(f.transform)) for f in catalog.load_table("s.t").spec().fields]
    assert fields == [("ts_day", "day"), ("id_bucket", "bucket[4]")]


def test_a_second_writer_that_loses_the_race_retries_on_fresh_metadata(catalog: Catalog, tmp_path: Path) -> None:
    first = TableWriter(catalog, WriteConfig(table="s.t"))
    first.commit([_staged("e0", "src:z", {"id": [0]})])
    other = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    second = TableWriter(other, WriteConfig(table="s.t"))
    stale = second.load()
    # the other writer commits between our load and our commit: the CAS must fail and retry
    first.commit([_staged("e1", "src:a", {"id": [1]})])
    conflicts: list[int] = []
    second.load = lambda: stale if not conflicts else other.load_table("s.t")  # type: ignore[method-assign]
    second.commit([_staged("e2", "src:b", {"id": [2]})], on_conflict=conflicts.append)
    assert conflicts == [1]
    assert [r["id"] for r in _rows(catalog, "s.t")] == [0, 1, 2]

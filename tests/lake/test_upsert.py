"""upsert and delete_keys: same table as pyiceberg's own upsert, touching only the files that hold the keys."""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import ValidationException
from pyiceberg.expressions import GreaterThanOrEqual
from pyiceberg.table import Table
from pyiceberg.types import StringType

from icefloe.config import WriteConfig
from icefloe.errors import DataError
from icefloe.lake import Staged, TableWriter, open_catalog
from icefloe.lake.evolve import align_to_table, apply_partition_spec, nullable
from icefloe.lake.upsert import UpsertResult, delete_keys, upsert
from icefloe.pipelines.dedupe import keep_last_by_key
from tests.query.test_delete_files import add_position_deletes

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("region", pa.string()),
        ("name", pa.string()),
        ("amount", pa.decimal128(10, 2)),
        ("score", pa.float64()),
        ("qty", pa.int32()),
        ("ts", pa.timestamp("us")),
    ]
)
PROPS = {"icefloe.events": "e1,e2"}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _create(catalog: Catalog, name: str, partition: list[str] | None = None, schema: pa.Schema = SCHEMA) -> Table:
    catalog.create_namespace_if_not_exists("s")
    table = catalog.create_table(f"s.{name}", schema=nullable(schema))
    if partition:
        apply_partition_spec(table, partition)
        table = catalog.load_table(f"s.{name}")
    return table


def _row(rng: random.Random, key: int, region: str | None = None) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.15 else value

    score = rng.choice([float("nan"), 0.5, -0.0, 1e9]) if rng.random() < 0.1 else rng.random()
    return {
        "id": key,
        "region": region if region is not None else rng.choice(["eu", "us", "ap"]),
        "name": maybe(rng.choice(["ann", "bob", "cy", "dé", ""])),
        "amount": maybe(Decimal(rng.randrange(-10_000, 10_000)) / 100),
        "score": maybe(score),
        "qty": maybe(rng.randrange(100)),
        "ts": maybe(dt.datetime(2026, 1, 1) + dt.timedelta(hours=rng.randrange(24 * 60))),
    }


def _table(rows: list[dict[str, Any]], table: Table) -> pa.Table:
    return align_to_table(pa.Table.from_pylist(rows, schema=SCHEMA), table.schema())


def _batch(rng: random.Random, existing: list[dict[str, Any]], key: list[str], next_id: int) -> list[dict[str, Any]]:
    """Changed rows, identical rows, new rows and duplicates of the same key (the last wins)."""
    rows = []
    for old in rng.sample(existing, min(len(existing), 40)):
        new = _row(rng, old["id"], old["region"])
        rows.append(dict(old) if rng.random() < 0.3 else {**old, **{c: new[c] for c in rng.sample(list(new)[2:], 2)}})
    rows += [_row(rng, next_id + i) for i in range(30)]
    rows += [_row(rng, r["id"], r["region"]) for r in rng.sample(rows, 10)]
    rng.shuffle(rows)
    return rows


def _rows(table: Table) -> list[tuple[Any, ...]]:
    """Sorted rows, with NaN made comparable."""
    def norm(v: Any) -> Any:
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    data = table.scan().to_arrow().to_pylist()
    return sorted((tuple(norm(v) for v in r.values()) for r in data), key=repr)


def _ours(table: Table, data: pa.Table, key: list[str]) -> UpsertResult:
    with table.transaction() as tx:
        return upsert(tx, data, key, snapshot_properties=PROPS)


def _theirs(table: Table, data: pa.Table, key: list[str]) -> tuple[int, int]:
    result = table.upsert(data, join_cols=key)
    return result.rows_updated, result.rows_inserted


def _file_paths(table: Table) -> set[str]:
    return {task.file.file_path for task in table.scan().plan_files()}


def _twins(catalog: Catalog, partition: list[str] | None = None) -> tuple[Table, Table]:
    return _create(catalog, "theirs", partition), _create(catalog, "ours", partition)


def _load_both(catalog: Catalog) -> tuple[Table, Table]:
    return catalog.load_table("s.theirs"), catalog.load_table("s.ours")


def _seed_files(tables: tuple[Table, ...], rows: list[dict[str, Any]], files: int) -> None:
    """The same rows in both tables, as several data files (some key-ordered, so bounds prune)."""
    chunk = -(-len(rows) // files)
    for n in range(files):
        part = rows[n * chunk : (n + 1) * chunk]
        if n % 2:
            part = sorted(part, key=lambda r: r["id"])
        for table in tables:
            table.append(_table(part, table))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_upserts_leave_the_same_table_as_pyiceberg(catalog: Catalog, seed: int) -> None:
    rng = random.Random(seed)
    theirs, ours = _twins(catalog)
    existing = [_row(rng, k) for k in rng.sample(range(1000), 200)]
    _seed_files((theirs, ours), existing, files=4)
    next_id = 1000
    for _ in range(3):
        theirs, ours = _load_both(catalog)
        data = keep_last_by_key(_table(_batch(rng, existing, ["id"], next_id), ours), ["id"])
        expected = _theirs(theirs, data, ["id"])
        result = _ours(ours, data, ["id"])
        assert (result.rows_updated, result.rows_inserted) == expected
        theirs, ours = _load_both(catalog)
        assert _rows(ours) == _rows(theirs)
        existing = ours.scan().to_arrow().to_pylist()
        next_id += 100


def test_multi_column_key_matches_pyiceberg(catalog: Catalog) -> None:
    rng = random.Random(7)
    theirs, ours = _twins(catalog)
    existing = [_row(rng, rng.randrange(50), region) for region in ("eu", "us", "ap") for _ in range(40)]
    existing = list({(r["region"], r["id"]): r for r in existing}.values())
    _seed_files((theirs, ours), existing, files=3)
    for round_ in range(2):
        theirs, ours = _load_both(catalog)
        rows = _batch(rng, existing, ["region", "id"], 100 + 50 * round_)
        data = keep_last_by_key(_table(rows, ours), ["region", "id"])
        expected = _theirs(theirs, data, ["region", "id"])
        result = _ours(ours, data, ["region", "id"])
        assert (result.rows_updated, result.rows_inserted) == expected
        assert _rows(catalog.load_table("s.ours")) == _rows(catalog.load_table("s.theirs"))


def test_schema_evolved_table_old_files_read_with_the_new_column(catalog: Catalog) -> None:
    rng = random.Random(11)
    narrow = pa.schema([("id", pa.int32()), SCHEMA.field("name"), ("qty", pa.int32())])
    theirs, ours = _create(catalog, "theirs", schema=narrow), _create(catalog, "ours", schema=narrow)
    old = [{"id": k, "name": rng.choice(["a", "b", None]), "qty": rng.randrange(9)} for k in range(60)]
    for table in (theirs, ours):
        table.append(pa.Table.from_pylist(old[:30], schema=nullable(narrow)))
        table.append(pa.Table.from_pylist(old[30:], schema=nullable(narrow)))
        with table.update_schema() as update:  # a column added, the key and another promoted after those files
            update.add_column("note", StringType())
            update.union_by_name(pa.schema([("id", pa.int64()), ("qty", pa.int64())]))
    theirs, ours = _load_both(catalog)
    wide = ours.schema().as_arrow()
    for table in (theirs, ours):
        table.append(pa.Table.from_pylist([{"id": 100 + k, "name": "n", "qty": 2**40, "note": "new"} for k in range(10)], schema=wide))
    theirs, ours = _load_both(catalog)
    rows = [{"id": 5, "name": "a", "qty": 1, "note": None}, {"id": 6, "name": "x", "qty": 2**35, "note": "hi"},
            {"id": 105, "name": "n", "qty": 2**40, "note": "new"}, {"id": 200, "name": "z", "qty": None, "note": None}]  # fmt: skip
    data = pa.Table.from_pylist(rows, schema=wide)
    expected = _theirs(theirs, data, ["id"])
    result = _ours(ours, data, ["id"])
    assert (result.rows_updated, result.rows_inserted) == expected
    assert (result.files_scanned, result.files_rewritten) == (2, 1)  # old files' 4-byte key bounds still prune
    assert _rows(catalog.load_table("s.ours")) == _rows(catalog.load_table("s.theirs"))


@pytest.mark.parametrize(
    ("partition", "key"),
    [
        (["region"], ["id"]),  # identity on a non-key column: updates may move rows between partitions
        (["day(ts)"], ["id"]),
        (["region"], ["region", "id"]),  # identity on a key column
        (["bucket(4, id)"], ["id"]),
    ],
)
def test_partitioned_tables_match_pyiceberg(catalog: Catalog, partition: list[str], key: list[str]) -> None:
    rng = random.Random(",".join(partition + key))
    theirs, ours = _twins(catalog, partition)
    existing = [_row(rng, k) for k in rng.sample(range(500), 120)]
    existing = [{**r, "ts": r["ts"] or dt.datetime(2026, 1, 1)} for r in existing]
    _seed_files((theirs, ours), existing, files=2)
    theirs, ours = _load_both(catalog)
    data = keep_last_by_key(_table(_batch(rng, existing, key, 500), ours), key)
    expected = _theirs(theirs, data, key)
    result = _ours(ours, data, key)
    assert (result.rows_updated, result.rows_inserted) == expected
    assert _rows(catalog.load_table("s.ours")) == _rows(catalog.load_table("s.theirs"))


def test_only_files_whose_key_range_holds_a_key_are_read_and_rewritten(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    rng = random.Random(3)
    for n in range(10):
        table.append(_table([_row(rng, k) for k in range(n * 100, n * 100 + 100)], table))
    before = _file_paths(catalog.load_table("s.t"))
    rows = [{**_row(rng, k), "name": "changed"} for k in (310, 355, 399)] + [_row(rng, 5000)]
    result = _ours(catalog.load_table("s.t"), _table(rows, table), ["id"])
    assert result == UpsertResult(rows_updated=3, rows_inserted=1, files_rewritten=1, files_scanned=1)
    after = catalog.load_table("s.t")
    assert len(before - _file_paths(after)) == 1  # the other nine files are the same files
    assert after.scan().count() == 1001


@pytest.mark.parametrize("key", [["ts"], ["amount"], ["name"], ["name", "ts"]])
def test_timestamp_decimal_and_string_keys_prune_by_bounds_and_match_pyiceberg(catalog: Catalog, key: list[str]) -> None:
    def row(n: int, value: str) -> dict[str, Any]:
        ts = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=n)
        return {"id": n, "name": f"n{n:05d}", "amount": Decimal(n) / 100, "ts": ts, "region": value}

    theirs, ours = _twins(catalog)
    for n in range(4):  # four files of consecutive keys
        for table in (theirs, ours):
            table.append(_table([row(k, "old") for k in range(n * 50, n * 50 + 50)], table))
    theirs, ours = _load_both(catalog)
    data = _table([row(k, "new") for k in (60, 75, 99)] + [row(k, "new") for k in (500, 501)], ours)
    expected = _theirs(theirs, data, key)
    result = _ours(ours, data, key)
    assert (result.rows_updated, result.rows_inserted) == expected == (3, 2)
    assert (result.files_scanned, result.files_rewritten) == (1, 1)
    assert _rows(catalog.load_table("s.ours")) == _rows(catalog.load_table("s.theirs"))


def test_empty_batch_changes_nothing_but_records_the_events(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    table.append(_table([{"id": 1}], table))
    result = _ours(catalog.load_table("s.t"), _table([], table), ["id"])
    after = catalog.load_table("s.t")
    assert result == UpsertResult(rows_updated=0, rows_inserted=0, files_rewritten=0, files_scanned=0)
    assert after.scan().count() == 1 and after.current_snapshot().summary["icefloe.events"] == "e1,e2"  # type: ignore[union-attr]


def test_bucketed_key_column_prunes_files_of_other_buckets(catalog: Catalog) -> None:
    table = _create(catalog, "t", ["bucket(8, id)"])
    rng = random.Random(5)
    for n in range(3):  # every append spreads over all eight buckets
        table.append(_table([_row(rng, k) for k in range(n * 200, n * 200 + 200)], table))
    files = len(_file_paths(catalog.load_table("s.t")))
    result = _ours(catalog.load_table("s.t"), _table([{**_row(rng, 42), "name": "changed"}], table), ["id"])
    assert files == 24
    assert result.files_scanned == 1 and result.files_rewritten == 1 and result.rows_updated == 1
    after = catalog.load_table("s.t")  # the other seven files of that commit's manifest are still there
    assert len(_file_paths(after)) == 25 and after.scan().count() == 600


def test_unchanged_rows_rewrite_nothing_but_the_snapshot_records_the_events(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    rows = [_row(random.Random(1), k) for k in range(20)]
    table.append(_table(rows, table))
    before = _file_paths(catalog.load_table("s.t"))
    result = _ours(catalog.load_table("s.t"), _table(rows[3:8], table), ["id"])
    assert result == UpsertResult(rows_updated=0, rows_inserted=0, files_rewritten=0, files_scanned=1)
    after = catalog.load_table("s.t")
    assert _file_paths(after) == before
    assert len(after.metadata.snapshots) == 2
    assert after.current_snapshot().summary["icefloe.events"] == "e1,e2"  # type: ignore[union-attr]


def test_one_overwrite_snapshot_per_upsert(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    rng = random.Random(2)
    table.append(_table([_row(rng, k) for k in range(20)], table))
    _ours(catalog.load_table("s.t"), _table([{**_row(rng, 3), "name": "new"}, _row(rng, 99)], table), ["id"])
    snapshots = catalog.load_table("s.t").metadata.snapshots
    assert len(snapshots) == 2
    summary = snapshots[-1].summary
    assert summary is not None and summary.operation.value == "overwrite"
    assert (summary["deleted-data-files"], summary["deleted-records"], summary["added-records"]) == ("1", "20", "21")
    assert summary["icefloe.events"] == "e1,e2"


def test_inserts_only_is_an_append(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    table.append(_table([_row(random.Random(1), k) for k in range(5)], table))
    result = _ours(catalog.load_table("s.t"), _table([_row(random.Random(2), 50)], table), ["id"])
    assert result == UpsertResult(rows_updated=0, rows_inserted=1, files_rewritten=0, files_scanned=0)
    summary = catalog.load_table("s.t").current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary.operation.value == "append"


def test_a_key_held_by_several_rows_is_replaced_everywhere_once(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    same = {"id": 1, "name": "x", "region": "eu"}
    table.append(_table([same, {"id": 2, "name": "a"}], table))
    table.append(_table([{**same, "name": "y"}, {"id": 3, "name": "b"}], table))
    result = _ours(catalog.load_table("s.t"), _table([same], table), ["id"])
    after = catalog.load_table("s.t")
    names = sorted((r["id"], r["name"]) for r in after.scan().to_arrow().to_pylist())
    assert names == [(1, "x"), (2, "a"), (3, "b")]
    assert result.rows_updated == 1 and result.files_rewritten == 2
    # the first attempt, which kept the identical copy, left no files behind
    on_disk = {p.as_uri() for p in Path(after.location().removeprefix("file://")).rglob("*.parquet")}
    referenced = {
        entry.data_file.file_path.replace("file:///", "file:/")
        for snapshot in after.metadata.snapshots
        for manifest in snapshot.manifests(after.io)
        for entry in manifest.fetch_manifest_entry(after.io, discard_deleted=False)
    }
    assert {p.replace("file:///", "file:/") for p in on_disk} == referenced


def test_rows_removed_by_position_deletes_stay_removed_when_their_file_is_rewritten(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    table.append(_table([{"id": k, "name": "old"} for k in range(10)], table))
    (task,) = list(catalog.load_table("s.t").scan().plan_files())
    add_position_deletes(catalog.load_table("s.t"), task.file.file_path, [2, 5])
    result = _ours(catalog.load_table("s.t"), _table([{"id": 3, "name": "new"}, {"id": 5, "name": "back"}], table), ["id"])
    rows = sorted((r["id"], r["name"]) for r in catalog.load_table("s.t").scan().to_arrow().to_pylist())
    assert rows == [(0, "old"), (1, "old"), (3, "new"), (4, "old"), (5, "back"), (6, "old"), (7, "old"), (8, "old"), (9, "old")]
    assert (result.rows_updated, result.rows_inserted) == (1, 1)


def test_pyiceberg_commit_retry_after_a_concurrent_delete_lands_on_fresh_metadata(catalog: Catalog) -> None:
    table = _create(catalog, "t")  # pyiceberg's own commit retries are on for this table
    table.append(_table([{"id": k, "name": "old"} for k in range(10)], table))
    table.append(_table([{"id": k, "name": "gone"} for k in range(100, 105)], table))
    with catalog.load_table("s.t").transaction() as tx:
        upsert(tx, _table([{"id": 3, "name": "new"}, {"id": 50, "name": "new"}], table), ["id"], snapshot_properties=PROPS)
        catalog.load_table("s.t").delete(GreaterThanOrEqual("id", 100))  # another writer drops the other file first
    rows = sorted((r["id"], r["name"]) for r in catalog.load_table("s.t").scan().to_arrow().to_pylist())
    assert rows == [(k, "new" if k == 3 else "old") for k in range(10)] + [(50, "new")]


def test_a_concurrent_append_fails_the_upsert_rather_than_risk_a_duplicate_key(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    table.append(_table([{"id": k, "name": "old"} for k in range(10)], table))
    with pytest.raises(ValidationException), catalog.load_table("s.t").transaction() as tx:
        upsert(tx, _table([{"id": 3, "name": "new"}, {"id": 50, "name": "new"}], table), ["id"])
        catalog.load_table("s.t").append(_table([{"id": 50, "name": "other writer"}], table))
    rows = sorted((r["id"], r["name"]) for r in catalog.load_table("s.t").scan().to_arrow().to_pylist())
    assert rows == [(k, "old") for k in range(10)] + [(50, "other writer")]


def test_null_key_is_a_data_error_and_duplicate_keys_are_refused(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    with pytest.raises(DataError, match="'id' is null in 1 row"):
        _ours(table, _table([{"id": 1}, {"id": None}], table), ["id"])
    with pytest.raises(ValueError, match="duplicate keys"):
        _ours(table, _table([{"id": 1}, {"id": 1}], table), ["id"])
    assert catalog.load_table("s.t").metadata.snapshots == []


def test_delete_keys_removes_those_rows_and_leaves_other_files_alone(catalog: Catalog) -> None:
    table = _create(catalog, "t")
    for n in range(3):
        table.append(_table([{"id": k, "region": "eu" if k % 2 else "us"} for k in range(n * 10, n * 10 + 10)], table))
    before = _file_paths(catalog.load_table("s.t"))
    keys = pa.table({"id": pa.array([3, 7, 7, None, 999], pa.int32())})  # null and absent keys match nothing
    with catalog.load_table("s.t").transaction() as tx:
        result = delete_keys(tx, keys, ["id"], snapshot_properties=PROPS)
    after = catalog.load_table("s.t")
    assert sorted(r["id"] for r in after.scan().to_arrow().to_pylist()) == [k for k in range(30) if k not in (3, 7)]
    assert (result.rows_deleted, result.files_rewritten, result.files_scanned) == (2, 1, 1)
    assert len(before & _file_paths(after)) == 2
    with catalog.load_table("s.t").transaction() as tx:
        result = delete_keys(tx, pa.table({"region": ["eu", "us"], "id": [11, 11]}), ["region", "id"])
    assert result.rows_deleted == 1 and catalog.load_table("s.t").scan().count() == 27


def test_writer_upserts_through_it_with_one_snapshot_carrying_the_event_ids(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.w", mode="upsert", key=["id"]))

    def staged(event: str, rows: dict[str, list[Any]]) -> Staged:
        n = len(rows["id"])
        return Staged(event, f"src:{event}", pa.table({**rows, "_icefloe_event": [event] * n, "_icefloe_source": ["x"] * n}))

    writer.commit([staged("e1", {"id": list(range(100)), "v": ["a"] * 100})])
    snapshot, done = writer.commit([staged("e2", {"id": [5, 500], "v": ["b", "c"]})])
    table = catalog.load_table("s.w")
    assert done == ["e2"] and len(table.metadata.snapshots) == 2
    assert table.snapshot_by_id(snapshot).summary["icefloe.events"] == "e2"  # type: ignore[union-attr]
    rows = {r["id"]: r["v"] for r in table.scan().to_arrow().to_pylist()}
    assert len(rows) == 101 and rows[5] == "b" and rows[500] == "c" and rows[4] == "a"

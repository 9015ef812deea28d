"""Table maintenance against a real SQLite catalog and local warehouse: expiry, compaction, manifest
rewrite, orphan removal, their races with ordinary commits, time travel, and when runs are due."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

from icefloe.config import WriteConfig
from icefloe.errors import ConfigError, NotFoundError
from icefloe.lake import Staged, TableWriter, maintain_compact, open_catalog
from icefloe.lake.maintain import (
    BOUNDED_METADATA_PROPERTIES,
    MAINTAINED_AT_PROPERTY,
    Maintainer,
    MaintenancePolicy,
    maintain,
    table_stats,
)
from icefloe.lake.maintain_expire import expire
from icefloe.lake.maintain_files import live_entries
from icefloe.lake.maintain_manifests import rewrite_manifests
from icefloe.lake.maintain_orphans import referenced_paths
from icefloe.query.duck import resolve_as_of
from tests.query.test_delete_files import add_position_deletes

T = "s.t"
ONLY_COMPACT = ("compact",)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(n: int, rows: int = 3, source: str | None = None, p: str | None = None) -> Staged:
    ids = list(range(n * 100, n * 100 + rows))
    data = {"id": ids, "v": [f"row{i}" for i in ids]}
    if p is not None:
        data["p"] = [p] * rows
    source = source or f"src:{n}"
    return Staged(f"e{n}", source, pa.table({**data, "_icefloe_event": [f"e{n}"] * rows, "_icefloe_source": [source] * rows}))


def _commit(catalog: Catalog, numbers: range, **config: object) -> TableWriter:
    writer = TableWriter(catalog, WriteConfig(table=T, **config))  # type: ignore[arg-type]
    for n in numbers:
        writer.commit([_staged(n)])
    return writer


def _ids(table: Table, snapshot_id: int | None = None) -> list[int]:
    return sorted(table.scan(snapshot_id=snapshot_id).to_arrow()["id"].to_pylist())


def _data_paths(table: Table) -> set[str]:
    return {e.data_file.file_path for e in live_entries(table)[0]}


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def _policy(**overrides: object) -> MaintenancePolicy:
    return MaintenancePolicy(**{"compact_min_files": 2, "orphan_min_age": 3600.0, **overrides})  # type: ignore[arg-type]


# -- expiry -----------------------------------------------------------------------------------------


def test_expiry_keeps_the_newest_snapshots_and_hands_over_the_expired_events_first(catalog: Catalog) -> None:
    _commit(catalog, range(10))
    before = catalog.load_table(T)
    by_event = {s.summary["icefloe.events"]: s.snapshot_id for s in before.metadata.snapshots}  # type: ignore[index]
    handed: list[dict[str, int]] = []

    def on_expire(ids: dict[str, int]) -> None:
        # called before the commit: the snapshots must still be there
        assert len(catalog.load_table(T).metadata.snapshots) == 10
        handed.append(ids)

    report = maintain(catalog, T, _policy(keep_snapshots=3), actions=("expire",), on_expire=on_expire)
    table = catalog.load_table(T)
    assert report.expired_snapshots == 7
    assert handed == [{f"e{n}": by_event[f"e{n}"] for n in range(7)}]
    assert [s.summary["icefloe.events"] for s in table.metadata.snapshots] == ["e7", "e8", "e9"]  # type: ignore[index]
    assert _ids(table) == sorted(n * 100 + i for n in range(10) for i in range(3))


def test_expiry_deletes_the_manifest_lists_and_manifests_only_expired_snapshots_used(catalog: Catalog) -> None:
    _commit(catalog, range(6))
    before = catalog.load_table(T)
    old_lists = {s.manifest_list for s in before.metadata.snapshots[:4]}
    report = maintain(catalog, T, _policy(keep_snapshots=2), actions=("expire",))
    table = catalog.load_table(T)
    assert report.bytes_freed > 0
    assert not any(_local(p).exists() for p in old_lists)
    # the kept snapshots still list the first commits' manifests and data files: all still there
    assert all(_local(p).exists() for p in referenced_paths(table))
    assert len(_ids(table)) == 18


def test_nothing_is_expired_when_on_expire_raises(catalog: Catalog) -> None:
    _commit(catalog, range(5))

    def refuse(ids: dict[str, int]) -> None:
        raise RuntimeError("ledger unavailable")

    with pytest.raises(RuntimeError, match="ledger unavailable"):
        maintain(catalog, T, _policy(keep_snapshots=1), actions=("expire",), on_expire=refuse)
    assert len(catalog.load_table(T).metadata.snapshots) == 5


def test_keep_for_protects_young_snapshots_and_the_one_current_when_the_window_opens(catalog: Catalog) -> None:
    _commit(catalog, range(6))
    snapshots = catalog.load_table(T).metadata.snapshots
    stamps = [s.timestamp_ms / 1000 for s in snapshots]
    now = stamps[-1] + 100.0
    keep_for = now - (stamps[2] + stamps[3]) / 2  # the window opens between the 3rd and 4th commit
    report = maintain(catalog, T, _policy(keep_snapshots=1, keep_for=keep_for), now=now, actions=("expire",))
    assert report.expired_snapshots == 2
    kept = [s.snapshot_id for s in catalog.load_table(T).metadata.snapshots]
    assert kept == [s.snapshot_id for s in snapshots[2:]]


def test_expiry_that_races_a_commit_retries_on_fresh_metadata(catalog: Catalog, tmp_path: Path) -> None:
    _commit(catalog, range(5))
    stale = catalog.load_table(T)
    other = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    TableWriter(other, WriteConfig(table=T)).commit([_staged(99)])
    result = expire(catalog, T, stale, 2, 0.0, now=time.time())
    table = catalog.load_table(T)
    assert result.expired == 4  # planned again on the metadata that holds the racing commit
    assert [s.summary["icefloe.events"] for s in table.metadata.snapshots] == ["e4", "e99"]  # type: ignore[index]
    assert 9900 in _ids(table)


# -- compaction -------------------------------------------------------------------------------------


def test_compaction_replaces_small_files_with_one_file_holding_the_same_rows(catalog: Catalog) -> None:
    _commit(catalog, range(10))
    before = catalog.load_table(T)
    rows = _ids(before)
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (10, 1)
    assert len(_data_paths(table)) == 1 and _ids(table) == rows
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.operation == Operation.REPLACE
    assert snapshot.summary["icefloe.maintenance"] == "compact"
    assert snapshot.summary["icefloe.events"] is None  # brings no events: the exactly-once check ignores it
    assert snapshot.summary["total-records"] == "30" and snapshot.summary["total-data-files"] == "1"


def test_compaction_skips_partitions_with_too_few_small_files_and_files_that_are_not_small(catalog: Catalog) -> None:
    _commit(catalog, range(5))
    assert maintain(catalog, T, _policy(compact_min_files=6), actions=ONLY_COMPACT).files_compacted == 0
    assert maintain(catalog, T, _policy(small_file_bytes=100), actions=ONLY_COMPACT).files_compacted == 0
    assert len(catalog.load_table(T).metadata.snapshots) == 5


def test_compaction_packs_files_into_bins_no_bigger_than_the_target(catalog: Catalog) -> None:
    _commit(catalog, range(9))
    size = max(e.data_file.file_size_in_bytes for e in live_entries(catalog.load_table(T))[0])
    report = maintain(catalog, T, _policy(target_file_bytes=3 * size + 10, small_file_bytes=size + 1), actions=ONLY_COMPACT)
    assert (report.files_compacted, report.files_written) == (9, 3)
    assert len(_ids(catalog.load_table(T))) == 27


def test_a_big_file_joins_a_rewrite_only_when_the_small_ones_outweigh_it(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T))
    writer.commit([_staged(0, rows=2000)])
    big = _data_paths(catalog.load_table(T))
    for n in range(1, 6):
        writer.commit([_staged(n)])
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert report.files_compacted == 5  # the 2,000-row file stays as it is
    assert len(big & _data_paths(table)) == 1 and len(_ids(table)) == 2015


def test_compaction_with_sort_by_writes_rows_in_order(catalog: Catalog) -> None:
    _commit(catalog, range(5, 0, -1))
    maintain(catalog, T, _policy(sort_by=("id",)), actions=ONLY_COMPACT)
    (path,) = _data_paths(catalog.load_table(T))
    ids = pq.read_table(_local(path))["id"].to_pylist()
    assert ids == sorted(ids) and len(ids) == 15


def test_compaction_of_a_partitioned_table_keeps_each_partition_apart(catalog: Catalog) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T, partition=["p"]))
    for n in range(8):
        writer.commit([_staged(n, p="a" if n % 2 else "b")])
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (8, 2)
    for entry in live_entries(table)[0]:
        (value,) = entry.data_file.partition
        assert f"/p={value}/" in entry.data_file.file_path
        assert set(pq.read_table(_local(entry.data_file.file_path))["p"].to_pylist()) == {value}
    assert len(_ids(table)) == 24


def test_compaction_reads_older_files_through_the_current_schema(catalog: Catalog) -> None:
    writer = _commit(catalog, range(3))
    extra = _staged(3)
    writer.commit([Staged(extra.event_id, extra.source_ref, extra.data.append_column("note", pa.array(["x"] * 3)))])
    maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    rows = table.scan().to_arrow().sort_by("id")
    assert len(_data_paths(table)) == 1
    assert rows["note"].to_pylist() == [None] * 9 + ["x"] * 3 and rows["v"].to_pylist()[0] == "row0"


def test_compaction_leaves_partitions_with_delete_files_alone(catalog: Catalog) -> None:
    _commit(catalog, range(4))
    table = catalog.load_table(T)
    add_position_deletes(table, sorted(_data_paths(table))[0], [0])
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    assert report.files_compacted == 0
    assert any("delete files" in note for note in report.notes)
    assert len(_ids(catalog.load_table(T))) == 11


def _race(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]) -> None:
    monkeypatch.setattr(maintain_compact, "_before_commit", action)


def test_compaction_that_races_an_append_commits_again_and_keeps_every_row(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(catalog, range(6))
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T))
    attempts: list[int] = []

    def append_first_time(attempt: int) -> None:
        attempts.append(attempt)
        if attempt == 0:  # lands between our read of the files and our commit
            other.commit([_staged(50)])

    _race(monkeypatch, append_first_time)
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert attempts == [0, 1] and (report.files_compacted, report.files_written) == (6, 1)
    assert _ids(table) == sorted([*(n * 100 + i for n in range(6) for i in range(3)), 5000, 5001, 5002])
    assert len(_data_paths(table)) == 2  # the compacted file and the racing append's
    operations = [s.summary.operation for s in table.metadata.snapshots[-2:]]  # type: ignore[union-attr]
    assert operations == [Operation.APPEND, Operation.REPLACE]


def test_compaction_that_raced_only_appends_commits_again_without_reading_every_manifest(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the re-check runs while the committer waits for it (the commit gate): only a commit that
    # could have taken an input (not an append) needs the manifests read again
    _commit(catalog, range(6))
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T))
    full_checks: list[int] = []
    still_valid = maintain_compact._still_valid
    monkeypatch.setattr(maintain_compact, "_still_valid", lambda *a: full_checks.append(1) or still_valid(*a))
    _race(monkeypatch, lambda attempt: [other.commit([_staged(50 + i)]) for i in range(2)] if attempt == 0 else None)
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert full_checks == [] and (report.files_compacted, report.files_written) == (6, 1)
    assert len(_ids(table)) == 8 * 3 and len(_data_paths(table)) == 3


def test_compaction_drops_the_bin_a_racing_replace_took_an_input_from(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T, mode="replace_source", partition=["p"]))
    for n in range(6):
        writer.commit([_staged(n, p="a" if n < 3 else "b")])
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T, mode="replace_source"))
    relanded = Staged("e1-again", "src:1", pa.table({
        "id": [7], "v": ["new"], "p": ["a"], "_icefloe_event": ["e1-again"], "_icefloe_source": ["src:1"],
    }))  # fmt: skip
    _race(monkeypatch, lambda attempt: other.commit([relanded]) if attempt == 0 else None)
    data_dir = _local(catalog.load_table(T).location()) / "data"
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (3, 1)  # partition b only
    assert any("racing commit" in note for note in report.notes)
    assert _ids(table) == [0, 1, 2, 7, 200, 201, 202, 300, 301, 302, 400, 401, 402, 500, 501, 502]
    # the dropped bin's output file is gone, not left as an orphan
    assert len(list(data_dir.rglob("icefloe-compact-*"))) == 1


def test_compaction_gives_up_cleanly_when_every_attempt_loses_the_race(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(catalog, range(4))
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T))
    monkeypatch.setattr(maintain_compact, "ATTEMPTS", 3)
    _race(monkeypatch, lambda attempt: other.commit([_staged(60 + attempt)]))
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert report.files_compacted == 0 and any("gave up" in note for note in report.notes)
    assert len(_ids(table)) == 4 * 3 + 3 * 3 and len(_data_paths(table)) == 7
    assert not list((_local(table.location()) / "data").rglob("icefloe-compact-*"))


def test_compaction_that_lost_a_race_goes_in_under_the_committers_lock_against_a_steady_stream(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committer that commits before every attempt, but takes the lock its worker's maintenance
    shares with it (`exclusive`): after the first lost race the compaction holds it and goes in."""
    _commit(catalog, range(4))
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T))
    gate = threading.Lock()
    racing: list[int] = []

    def commit_unless_held(attempt: int) -> None:
        if gate.acquire(blocking=False):
            try:
                other.commit([_staged(60 + attempt)])
                racing.append(attempt)
            finally:
                gate.release()

    _race(monkeypatch, commit_unless_held)
    report = maintain(catalog, T, _policy(), actions=ONLY_COMPACT, exclusive=lambda: gate)
    table = catalog.load_table(T)
    assert racing == [0] and report.files_compacted == 4 and report.files_written == 1
    assert len(_ids(table)) == 4 * 3 + 3 and len(_data_paths(table)) == 2


def test_expiry_after_compaction_deletes_the_replaced_small_files(catalog: Catalog) -> None:
    writer = _commit(catalog, range(5))
    small = _data_paths(catalog.load_table(T))
    maintain(catalog, T, _policy(keep_snapshots=1), actions=("compact", "expire"))
    # the last commit still reads the small files (time travel to it must work): all kept
    assert all(_local(p).exists() for p in small)
    writer.commit([_staged(5)])
    maintain(catalog, T, _policy(keep_snapshots=1), actions=("expire",))
    table = catalog.load_table(T)
    assert not any(_local(p).exists() for p in small)
    assert all(_local(p).exists() for p in _data_paths(table)) and len(_ids(table)) == 18


# -- manifests --------------------------------------------------------------------------------------


def test_manifest_rewrite_collapses_the_manifest_list_without_changing_the_table(catalog: Catalog) -> None:
    _commit(catalog, range(12))
    before = catalog.load_table(T)
    files, rows = _data_paths(before), _ids(before)
    report = maintain(catalog, T, _policy(max_manifests=4), actions=("manifests",))
    table = catalog.load_table(T)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert (report.manifests_before, report.manifests_after) == (12, 1)
    assert snapshot.summary.operation == Operation.REPLACE and snapshot.summary["total-records"] == "36"
    (manifest,) = snapshot.manifests(table.io)
    entries = manifest.fetch_manifest_entry(table.io, discard_deleted=False)
    assert {e.status for e in entries} == {ManifestEntryStatus.EXISTING}
    assert _data_paths(table) == files and _ids(table) == rows


def test_manifest_rewrite_is_skipped_below_the_limit_and_retries_a_racing_commit(catalog: Catalog, tmp_path: Path) -> None:
    _commit(catalog, range(5))
    assert maintain(catalog, T, _policy(max_manifests=5), actions=("manifests",)).manifests_after == 5
    stale = catalog.load_table(T)
    TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T)).commit([_staged(70)])
    result = rewrite_manifests(catalog, T, stale, max_manifests=2)
    assert result.after == 1
    assert len(_ids(catalog.load_table(T))) == 18


# -- orphans ----------------------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_orphan_removal_deletes_only_old_files_nothing_references(catalog: Catalog) -> None:
    _commit(catalog, range(3))
    table = catalog.load_table(T)
    location = _local(table.location())
    old = [location / "data" / "crashed-write.parquet", location / "metadata" / "lost-manifest.avro"]
    young = location / "data" / "in-flight.parquet"
    elsewhere = location / "scratch" / "not-iceberg.txt"
    for path in [*old, young, elsewhere]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    for path in [*old, elsewhere, *(p for p in location.rglob("*") if p.is_file() and p != young)]:
        _age(path, 7200)
    dry = maintain(catalog, T, _policy(), actions=("orphans",), dry_run=True)
    assert dry.orphans_removed == 2 and all(p.exists() for p in old)
    report = maintain(catalog, T, _policy(), actions=("orphans",))
    assert (report.orphans_removed, report.bytes_freed) == (2, 20)
    assert not any(p.exists() for p in old) and young.exists() and elsewhere.exists()
    assert all(_local(p).exists() for p in referenced_paths(catalog.load_table(T)))
    assert len(_ids(catalog.load_table(T))) == 9


# -- the whole run, time travel, stats ---------------------------------------------------------------


def test_time_travel_inside_the_retention_reads_the_same_rows_after_maintenance(catalog: Catalog) -> None:
    _commit(catalog, range(12))
    table = catalog.load_table(T)
    recent = table.metadata.snapshots[-4:]
    expected = {s.snapshot_id: _ids(table, s.snapshot_id) for s in recent}
    as_of = {s.snapshot_id: str(s.timestamp_ms + 1) for s in recent}  # epoch millis, as `--as-of` takes them
    expired = table.metadata.snapshots[0].snapshot_id
    report = maintain(catalog, T, _policy(keep_snapshots=4, max_manifests=2))
    table = catalog.load_table(T)
    assert report.files_compacted == 12 and report.expired_snapshots > 0
    for snapshot_id, ids in expected.items():
        assert _ids(table, snapshot_id) == ids
        assert resolve_as_of(table, as_of[snapshot_id]) == snapshot_id
    assert table.snapshot_by_id(expired) is None


def test_dry_run_reports_what_would_happen_and_changes_nothing(catalog: Catalog) -> None:
    _commit(catalog, range(8))
    table = catalog.load_table(T)
    files = sorted(p for p in _local(table.location()).rglob("*") if p.is_file())
    report = maintain(catalog, T, _policy(keep_snapshots=2, max_manifests=2), dry_run=True)
    assert report.dry_run and (report.expired_snapshots, report.files_compacted, report.files_written) == (6, 8, 1)
    assert (report.manifests_before, report.manifests_after) == (8, 1) and report.bytes_freed > 0
    after = catalog.load_table(T)
    assert after.metadata_location == table.metadata_location
    assert sorted(p for p in _local(table.location()).rglob("*") if p.is_file()) == files
    assert MAINTAINED_AT_PROPERTY not in after.properties


def test_a_run_records_its_time_and_bounds_metadata_growth(catalog: Catalog) -> None:
    _commit(catalog, range(3))
    report = maintain(catalog, T, _policy(), now=1_800_000_000.0)
    table = catalog.load_table(T)
    assert table.properties[MAINTAINED_AT_PROPERTY] == "1800000000.000"
    assert all(table.properties[k] == v for k, v in BOUNDED_METADATA_PROPERTIES.items())
    assert report.snapshot_id == table.current_snapshot().snapshot_id  # type: ignore[union-attr]
    assert report.to_dict()["table"] == T


def test_table_stats_count_files_small_files_manifests_and_the_last_run(catalog: Catalog) -> None:
    _commit(catalog, range(4))
    stats = table_stats(catalog.load_table(T))
    assert (stats["data_files"], stats["small_files"], stats["small_file_ratio"]) == (4, 4, 1.0)
    assert (stats["manifests"], stats["snapshots"], stats["last_maintained_at"]) == (4, 4, None)
    assert stats["metadata_bytes"] > stats["data_bytes"] > 0
    assert table_stats(catalog.load_table(T), small_file_bytes=1)["small_files"] == 0
    maintain(catalog, T, _policy(), now=1_800_000_000.0)
    after = table_stats(catalog.load_table(T))
    assert (after["data_files"], after["manifests"], after["last_maintained_at"]) == (1, 2, 1_800_000_000.0)


def test_a_failing_step_is_reported_and_the_others_still_run(catalog: Catalog) -> None:
    _commit(catalog, range(5))
    _local(sorted(_data_paths(catalog.load_table(T)))[0]).unlink()  # compaction cannot read it
    report = maintain(catalog, T, _policy(keep_snapshots=2), actions=("compact", "expire"))
    assert any(note.startswith("compact failed") for note in report.notes)
    assert report.files_compacted == 0 and report.expired_snapshots == 3
    assert not list((_local(catalog.load_table(T).location()) / "data").rglob("icefloe-compact-*"))


def test_bad_actions_policies_and_tables_are_refused(catalog: Catalog) -> None:
    _commit(catalog, range(1))
    with pytest.raises(ConfigError, match="vacuum"):
        maintain(catalog, T, _policy(), actions=("vacuum",))
    with pytest.raises(NotFoundError):
        maintain(catalog, "s.missing", _policy())
    with pytest.raises(ConfigError):
        MaintenancePolicy(keep_snapshots=0)


# -- when a run is due ------------------------------------------------------------------------------


def test_maintainer_is_due_after_n_commits_and_starts_counting_again_after_a_run(catalog: Catalog) -> None:
    writer = _commit(catalog, range(0))
    maintainer = Maintainer(catalog, {T: _policy(every_commits=3, small_files=0)}, _policy())
    due = []
    for n in range(3):
        writer.commit([_staged(n)])
        due.append(maintainer.after_commit(T))
    assert due == [False, False, True]
    maintainer.run(T)
    assert not maintainer.due(T)
    writer.commit([_staged(9)])
    assert not maintainer.after_commit(T, catalog.load_table(T))


def test_maintainer_counts_small_files_from_what_each_commit_added(catalog: Catalog) -> None:
    writer = _commit(catalog, range(0))
    maintainer = Maintainer(catalog, {}, _policy(every_commits=0, small_files=3))
    due = []
    for n in range(3):
        table = writer.load()
        writer.commit([_staged(n)], table=table)
        due.append(maintainer.after_commit(T, table))
    assert due == [False, False, True]
    big = Maintainer(catalog, {}, _policy(every_commits=0, small_files=3, small_file_bytes=1))
    assert not big.due(T, catalog.load_table(T))


def test_a_new_maintainer_picks_up_what_piled_up_since_the_last_run(catalog: Catalog) -> None:
    _commit(catalog, range(2))
    maintain(catalog, T, _policy())
    _commit(catalog, range(10, 14))
    maintainer = Maintainer(catalog, {}, _policy(every_commits=4, small_files=0))
    assert maintainer.due(T, catalog.load_table(T))
    assert not Maintainer(catalog, {}, _policy(every_commits=5, small_files=0)).due(T, catalog.load_table(T))


def test_a_vetoed_run_still_restarts_the_count_so_it_is_not_retried_after_every_commit(catalog: Catalog) -> None:
    _commit(catalog, range(4))
    commits = [s.snapshot_id for s in catalog.load_table(T).metadata.snapshots]
    maintainer = Maintainer(catalog, {}, _policy(every_commits=2, small_files=0, keep_snapshots=1))
    assert maintainer.due(T, catalog.load_table(T))

    def refuse(ids: dict[str, int]) -> None:
        raise RuntimeError("ledger busy")

    with pytest.raises(RuntimeError):
        maintainer.run(T, on_expire=refuse)
    table = catalog.load_table(T)
    assert not maintainer.due(T) and all(table.snapshot_by_id(i) is not None for i in commits)


def test_maintainer_schedule_counts_from_the_last_run(catalog: Catalog) -> None:
    _commit(catalog, range(1))
    maintainer = Maintainer(catalog, {}, _policy(every=60.0, every_commits=0, small_files=0))
    report = maintainer.run(T)
    assert not maintainer.due(T, now=report.ended + 59)
    assert maintainer.due(T, now=report.ended + 61)

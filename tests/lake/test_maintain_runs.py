"""A whole maintenance run and the manifest rewrite: time travel inside the retention, dry runs,
what a run records, table stats, a failing step, refused actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table.snapshots import Operation

from icefloe.config import WriteConfig
from icefloe.errors import ConfigError, NotFoundError
from icefloe.lake import TableWriter, open_catalog
from icefloe.lake.maintain import (
    BOUNDED_METADATA_PROPERTIES,
    MAINTAINED_AT_PROPERTY,
    MaintenancePolicy,
    maintain,
    table_stats,
)
from icefloe.lake.maintain_manifests import rewrite_manifests
from icefloe.query.duck import resolve_as_of
from tests.lake.maintaining import T, commit_each, data_paths, ids_of, local, policy, staged


def test_manifest_rewrite_collapses_the_manifest_list_without_changing_the_table(catalog: Catalog) -> None:
    commit_each(catalog, range(12))
    before = catalog.load_table(T)
    files, rows = data_paths(before), ids_of(before)
    report = maintain(catalog, T, policy(max_manifests=4), actions=("manifests",))
    table = catalog.load_table(T)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert (report.manifests_before, report.manifests_after) == (12, 1)
    assert snapshot.summary.operation == Operation.REPLACE and snapshot.summary["total-records"] == "36"
    (manifest,) = snapshot.manifests(table.io)
    entries = manifest.fetch_manifest_entry(table.io, discard_deleted=False)
    assert {e.status for e in entries} == {ManifestEntryStatus.EXISTING}
    assert data_paths(table) == files and ids_of(table) == rows


def test_manifest_rewrite_is_skipped_below_the_limit_and_retries_a_racing_commit(catalog: Catalog, tmp_path: Path) -> None:
    commit_each(catalog, range(5))
    assert maintain(catalog, T, policy(max_manifests=5), actions=("manifests",)).manifests_after == 5
    stale = catalog.load_table(T)
    TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T)).commit([staged(70)])
    result = rewrite_manifests(catalog, T, stale, max_manifests=2)
    assert result.after == 1
    assert len(ids_of(catalog.load_table(T))) == 18


def test_time_travel_inside_the_retention_reads_the_same_rows_after_maintenance(catalog: Catalog) -> None:
    commit_each(catalog, range(12))
    table = catalog.load_table(T)
    recent = table.metadata.snapshots[-4:]
    expected = {s.snapshot_id: ids_of(table, s.snapshot_id) for s in recent}
    as_of = {s.snapshot_id: str(s.timestamp_ms + 1) for s in recent}  # epoch millis, as `--as-of` takes them
    expired = table.metadata.snapshots[0].snapshot_id
    report = maintain(catalog, T, policy(keep_snapshots=4, max_manifests=2))
    table = catalog.load_table(T)
    assert report.files_compacted == 12 and report.expired_snapshots > 0
    for snapshot_id, ids in expected.items():
        assert ids_of(table, snapshot_id) == ids
        assert resolve_as_of(table, as_of[snapshot_id]) == snapshot_id
    assert table.snapshot_by_id(expired) is None


def test_dry_run_reports_what_would_happen_and_changes_nothing(catalog: Catalog) -> None:
    commit_each(catalog, range(8))
    table = catalog.load_table(T)
    files = sorted(p for p in local(table.location()).rglob("*") if p.is_file())
    report = maintain(catalog, T, policy(keep_snapshots=2, max_manifests=2), dry_run=True)
    assert report.dry_run and (report.expired_snapshots, report.files_compacted, report.files_written) == (6, 8, 1)
    assert (report.manifests_before, report.manifests_after) == (8, 1) and report.bytes_freed > 0
    after = catalog.load_table(T)
    assert after.metadata_location == table.metadata_location
    assert sorted(p for p in local(table.location()).rglob("*") if p.is_file()) == files
    assert MAINTAINED_AT_PROPERTY not in after.properties


def test_a_run_records_its_time_and_bounds_metadata_growth(catalog: Catalog) -> None:
    commit_each(catalog, range(3))
    report = maintain(catalog, T, policy(), now=1_800_000_000.0)
    table = catalog.load_table(T)
    assert table.properties[MAINTAINED_AT_PROPERTY] == "1800000000.000"
    assert all(table.properties[k] == v for k, v in BOUNDED_METADATA_PROPERTIES.items())
    assert report.snapshot_id == table.current_snapshot().snapshot_id  # type: ignore[union-attr]
    assert report.to_dict()["table"] == T


def test_table_stats_count_files_small_files_manifests_and_the_last_run(catalog: Catalog) -> None:
    commit_each(catalog, range(4))
    stats = table_stats(catalog.load_table(T))
    assert (stats["data_files"], stats["small_files"], stats["small_file_ratio"]) == (4, 4, 1.0)
    assert (stats["manifests"], stats["snapshots"], stats["last_maintained_at"]) == (4, 4, None)
    assert stats["metadata_bytes"] > stats["data_bytes"] > 0
    assert table_stats(catalog.load_table(T), small_file_bytes=1)["small_files"] == 0
    maintain(catalog, T, policy(), now=1_800_000_000.0)
    after = table_stats(catalog.load_table(T))
    assert (after["data_files"], after["manifests"], after["last_maintained_at"]) == (1, 2, 1_800_000_000.0)


def test_a_failing_step_is_reported_and_the_others_still_run(catalog: Catalog) -> None:
    commit_each(catalog, range(5))
    local(sorted(data_paths(catalog.load_table(T)))[0]).unlink()  # compaction cannot read it
    report = maintain(catalog, T, policy(keep_snapshots=2), actions=("compact", "expire"))
    assert any(note.startswith("compact failed") for note in report.notes)
    assert report.files_compacted == 0 and report.expired_snapshots == 3
    assert not list((local(catalog.load_table(T).location()) / "data").rglob("icefloe-compact-*"))


def test_bad_actions_policies_and_tables_are_refused(catalog: Catalog) -> None:
    commit_each(catalog, range(1))
    with pytest.raises(ConfigError, match="vacuum"):
        maintain(catalog, T, policy(), actions=("vacuum",))
    with pytest.raises(NotFoundError):
        maintain(catalog, "s.missing", policy())
    with pytest.raises(ConfigError):
        MaintenancePolicy(keep_snapshots=0)

"""Snapshot expiry and orphan removal: what goes, what stays (the newest snapshots, young ones,
what a kept snapshot still reads), the expired events handed over first, and a race with a commit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from icefloe.config import WriteConfig
from icefloe.lake import TableWriter, open_catalog
from icefloe.lake.maintain import maintain
from icefloe.lake.maintain_expire import expire
from icefloe.lake.maintain_orphans import referenced_paths
from tests.lake.maintaining import T, commit_each, data_paths, ids_of, local, policy, staged


def test_expiry_keeps_the_newest_snapshots_and_hands_over_the_expired_events_first(catalog: Catalog) -> None:
    commit_each(catalog, range(10))
    before = catalog.load_table(T)
    by_event = {s.summary["icefloe.events"]: s.snapshot_id for s in before.metadata.snapshots}  # type: ignore[index]
    handed: list[dict[str, int]] = []

    def on_expire(ids: dict[str, int]) -> None:
        # called before the commit: the snapshots must still be there
        assert len(catalog.load_table(T).metadata.snapshots) == 10
        handed.append(ids)

    report = maintain(catalog, T, policy(keep_snapshots=3), actions=("expire",), on_expire=on_expire)
    table = catalog.load_table(T)
    assert report.expired_snapshots == 7
    assert handed == [{f"e{n}": by_event[f"e{n}"] for n in range(7)}]
    assert [s.summary["icefloe.events"] for s in table.metadata.snapshots] == ["e7", "e8", "e9"]  # type: ignore[index]
    assert ids_of(table) == sorted(n * 100 + i for n in range(10) for i in range(3))


def test_expiry_deletes_the_manifest_lists_and_manifests_only_expired_snapshots_used(catalog: Catalog) -> None:
    commit_each(catalog, range(6))
    before = catalog.load_table(T)
    old_lists = {s.manifest_list for s in before.metadata.snapshots[:4]}
    report = maintain(catalog, T, policy(keep_snapshots=2), actions=("expire",))
    table = catalog.load_table(T)
    assert report.bytes_freed > 0
    assert not any(local(p).exists() for p in old_lists)
    # the kept snapshots still list the first commits' manifests and data files: all still there
    assert all(local(p).exists() for p in referenced_paths(table))
    assert len(ids_of(table)) == 18


def test_nothing_is_expired_when_on_expire_raises(catalog: Catalog) -> None:
    commit_each(catalog, range(5))

    def refuse(ids: dict[str, int]) -> None:
        raise RuntimeError("ledger unavailable")

    with pytest.raises(RuntimeError, match="ledger unavailable"):
        maintain(catalog, T, policy(keep_snapshots=1), actions=("expire",), on_expire=refuse)
    assert len(catalog.load_table(T).metadata.snapshots) == 5


def test_keep_for_protects_young_snapshots_and_the_one_current_when_the_window_opens(catalog: Catalog) -> None:
    commit_each(catalog, range(6))
    snapshots = catalog.load_table(T).metadata.snapshots
    stamps = [s.timestamp_ms / 1000 for s in snapshots]
    now = stamps[-1] + 100.0
    keep_for = now - (stamps[2] + stamps[3]) / 2  # the window opens between the 3rd and 4th commit
    report = maintain(catalog, T, policy(keep_snapshots=1, keep_for=keep_for), now=now, actions=("expire",))
    assert report.expired_snapshots == 2
    kept = [s.snapshot_id for s in catalog.load_table(T).metadata.snapshots]
    assert kept == [s.snapshot_id for s in snapshots[2:]]


def test_expiry_that_races_a_commit_retries_on_fresh_metadata(catalog: Catalog, tmp_path: Path) -> None:
    commit_each(catalog, range(5))
    stale = catalog.load_table(T)
    other = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    TableWriter(other, WriteConfig(table=T)).commit([staged(99)])
    result = expire(catalog, T, stale, 2, 0.0, now=time.time())
    table = catalog.load_table(T)
    assert result.expired == 4  # planned again on the metadata that holds the racing commit
    assert [s.summary["icefloe.events"] for s in table.metadata.snapshots] == ["e4", "e99"]  # type: ignore[index]
    assert 9900 in ids_of(table)


def test_expiry_after_compaction_deletes_the_replaced_small_files(catalog: Catalog) -> None:
    writer = commit_each(catalog, range(5))
    small = data_paths(catalog.load_table(T))
    maintain(catalog, T, policy(keep_snapshots=1), actions=("compact", "expire"))
    # the last commit still reads the small files (time travel to it must work): all kept
    assert all(local(p).exists() for p in small)
    writer.commit([staged(5)])
    maintain(catalog, T, policy(keep_snapshots=1), actions=("expire",))
    table = catalog.load_table(T)
    assert not any(local(p).exists() for p in small)
    assert all(local(p).exists() for p in data_paths(table)) and len(ids_of(table)) == 18


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_orphan_removal_deletes_only_old_files_nothing_references(catalog: Catalog) -> None:
    commit_each(catalog, range(3))
    table = catalog.load_table(T)
    location = local(table.location())
    old = [location / "data" / "crashed-write.parquet", location / "metadata" / "lost-manifest.avro"]
    young = location / "data" / "in-flight.parquet"
    elsewhere = location / "scratch" / "not-iceberg.txt"
    for path in [*old, young, elsewhere]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    for path in [*old, elsewhere, *(p for p in location.rglob("*") if p.is_file() and p != young)]:
        _age(path, 7200)
    dry = maintain(catalog, T, policy(), actions=("orphans",), dry_run=True)
    assert dry.orphans_removed == 2 and all(p.exists() for p in old)
    report = maintain(catalog, T, policy(), actions=("orphans",))
    assert (report.orphans_removed, report.bytes_freed) == (2, 20)
    assert not any(p.exists() for p in old) and young.exists() and elsewhere.exists()
    assert all(local(p).exists() for p in referenced_paths(catalog.load_table(T)))
    assert len(ids_of(catalog.load_table(T))) == 9

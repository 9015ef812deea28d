"""Maintenance as worker duty: triggered by commits, recorded as ledger jobs, safe for exactly-once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.cli import EXIT_NOT_FOUND, main
from icefloe.lake.maintain_expire import expire
from icefloe.lake.writer import Staged, TableWriter, committed_event_ids
from icefloe.upkeep import JOB_KIND, Upkeep
from tests.helpers import ORDERS, csv_file, make_project, wait_for

FAST = {"every_commits": 3, "keep_snapshots": 2, "compact_min_files": 2, "target_file_bytes": "1MB"}


def _ingest_one_by_one(project: Project, tmp_path: Path, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        (event,) = project.ingest([csv_file(tmp_path / f"f{i}.csv", "id,ts,amount", [f"{i},2026-01-01T00:00:00,{i}.50"])])
        assert event.state == "committed"
    project.wait_for_maintenance()  # the runs those commits made due go on beside the ingests


def test_commits_trigger_maintenance_that_keeps_history_short_and_rows_whole(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, maintenance=FAST))
    _ingest_one_by_one(project, tmp_path, 7)
    jobs = project.ledger.jobs(kind=JOB_KIND, target="sales.orders")
    assert jobs and all(j.state == "succeeded" for j in jobs)
    assert sum(j.detail["expired_snapshots"] for j in jobs) > 0
    assert sum(j.detail["files_compacted"] for j in jobs) > 0
    table = project.catalog.load_table("sales.orders")
    assert len(table.metadata.snapshots) <= 2 + 3  # kept ones plus the commits since the last run
    assert project.sql("select count(*) as n, sum(id) as s from sales.orders").to_pylist() == [{"n": 7, "s": 21}]
    (row,) = [r for r in project.status() if r["kind"] == "table"]
    assert row["last_maintained"] is not None and row["maintenance"] == "succeeded"
    assert row["data_files"] < 7 and row["metadata_mb"] > 0


def test_maintenance_can_be_turned_off_per_table(tmp_path: Path) -> None:
    settings = {**FAST, "tables": {"sales.orders": {"enabled": False}}}
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, maintenance=settings))
    _ingest_one_by_one(project, tmp_path, 4)
    assert project.ledger.jobs(kind=JOB_KIND) == []
    assert len(project.catalog.load_table("sales.orders").metadata.snapshots) == 4


def test_expiring_the_only_proof_of_a_commit_records_it_in_the_ledger_first(tmp_path: Path) -> None:
    """A worker committed to Iceberg and died before its ledger update; the snapshot that proves
    the commit then expires. The event must not run (and land its rows) a second time."""
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, maintenance={**FAST, "every_commits": 1000}))
    _ingest_one_by_one(project, tmp_path, 1)
    path = csv_file(tmp_path / "p/landing/crashed.csv", "id,ts,amount", ["100,2026-01-01T00:00:00,1.00"])
    engine = project.engine()
    (event,) = engine.land(project.sources["landing"], "crashed.csv")
    (leased,) = project.ledger.lease("dead-worker", limit=1, ttl=0.01)
    out = engine.runners["orders"].run(leased, path)
    TableWriter(project.catalog, project.config.pipelines["orders"].write).commit([Staged(event.id, out.source_ref, out.data)])
    _ingest_one_by_one(project, tmp_path, 4, start=1)  # pushes that snapshot out of keep_snapshots
    reports = project.maintain("sales.orders")
    assert reports[0]["expired_snapshots"] >= 3
    settled = project.ledger.get(event.id)
    assert settled is not None and settled.state == "committed" and settled.snapshot_id is not None
    project.run(once=True)
    assert project.sql("select count(*) as n from sales.orders where id = 100").to_pylist() == [{"n": 1}]


def test_one_worker_at_a_time_maintains_a_table(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    _ingest_one_by_one(project, tmp_path, 2)
    running = project.ledger.start_job(JOB_KIND, "sales.orders", "other-worker", stale_after=3600)
    assert running is not None
    assert Upkeep(project.runtime, "me").run("sales.orders") is None
    (report,) = project.maintain("sales.orders")
    assert report["notes"] == ["skipped: another worker is maintaining it"]


def test_cli_maintain_dry_run_changes_nothing_and_unknown_table_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS}, maintenance={"compact_min_files": 2, "keep_snapshots": 1})
    _ingest_one_by_one(Project(root), tmp_path, 3)
    before = len(Project(root).catalog.load_table("sales.orders").metadata.snapshots)
    main(["maintain", "-p", str(root), "--dry-run", "--format", "json"])
    (report,) = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is True and report["expired_snapshots"] == 2 and report["files_compacted"] == 3
    assert len(Project(root).catalog.load_table("sales.orders").metadata.snapshots) == before
    with pytest.raises(SystemExit) as exit_info:
        main(["maintain", "-p", str(root), "sales.nope"])
    assert exit_info.value.code == EXIT_NOT_FOUND
    capsys.readouterr()
    main(["maintain", "-p", str(root), "--format", "json"])
    (report,) = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False and report["expired_snapshots"] >= 2 and report["files_written"] == 1
    assert len(Project(root).catalog.load_table("sales.orders").metadata.snapshots) < before


def test_a_run_abandoned_by_a_killed_worker_does_not_block_the_next_one(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    _ingest_one_by_one(project, tmp_path, 2)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_owner = f"{socket.gethostname()}:{gone.stdout.strip()}:abcdef"
    assert project.ledger.start_job(JOB_KIND, "sales.orders", dead_owner, stale_after=3600) is not None
    report = Upkeep(project.runtime, "me").run("sales.orders")
    assert report is not None
    states = {j.owner: (j.state, j.error) for j in project.ledger.jobs(kind=JOB_KIND)}
    assert states[dead_owner][0] == "failed" and "died" in (states[dead_owner][1] or "")
    assert states["me"] == ("succeeded", None)


def _committed_then_crashed(project: Project, tmp_path: Path, later_commits: int) -> str:
    """A worker committed event 100 to the table and died before its ledger update (its lease
    has run out); `later_commits` commits followed it, so its snapshot is due to expire."""
    engine = project.engine()
    paths = {}
    for n in [*range(1, later_commits + 1), 100]:  # the later ones land first so they lease first
        paths[n] = csv_file(tmp_path / f"p/landing/by-hand-{n}.csv", "id,ts,amount", [f"{n},2026-01-01T00:00:00,1.00"])
        engine.land(project.sources["landing"], paths[n].name)
    later = project.ledger.lease("busy-worker", limit=later_commits, ttl=3600)
    (crashed,) = project.ledger.lease("busy-worker", limit=1, ttl=0.2)
    writer = TableWriter(project.catalog, project.config.pipelines["orders"].write)
    for ev in [crashed, *later]:
        n = 100 if ev is crashed else int(ev.key.rsplit("-", 1)[1].split(".")[0])
        out = engine.runners["orders"].run(ev, paths[n])
        snapshot_id, _ = writer.commit([Staged(ev.id, out.source_ref, out.data)])
        if ev is not crashed:
            project.ledger.mark_committed([ev.id], table="sales.orders", snapshot_id=snapshot_id, stats={})
    assert wait_for(lambda: time.time() > crashed.lease_expires_at)  # type: ignore[operator]
    return crashed.id


def test_expiry_keeps_the_snapshot_of_an_event_a_worker_is_still_committing(tmp_path: Path) -> None:
    """The snapshot of an event still `running` must stay: its worker may be between its commit
    and its ledger update (maintenance now runs beside the committer), or, as here, the retry
    after a crash is about to check the table history for it."""
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, maintenance={**FAST, "every_commits": 1000}))
    _ingest_one_by_one(project, tmp_path, 1)
    event_id = _committed_then_crashed(project, tmp_path, 4)
    (report,) = project.maintain("sales.orders")
    assert report["expired_snapshots"] >= 1 and any("being committed right now" in n for n in report["notes"])
    table = project.catalog.load_table("sales.orders")
    assert event_id in committed_event_ids(table)
    held = project.ledger.get(event_id)
    assert held is not None and held.state == "running"
    project.run(once=True)
    settled = project.ledger.get(event_id)
    assert settled is not None and settled.state == "committed"
    assert project.sql("select count(*) as n from sales.orders where id = 100").to_pylist() == [{"n": 1}]


def test_a_retried_event_settled_by_expiry_after_its_lease_is_not_committed_twice(tmp_path: Path) -> None:
    """Maintenance records the commit (the event was not leased when it looked), a worker leases
    the event again, then the expiry drops the snapshot before that worker reads the history."""
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, maintenance={**FAST, "every_commits": 1000}))
    _ingest_one_by_one(project, tmp_path, 1)
    event_id = _committed_then_crashed(project, tmp_path, 2)
    engine = project.engine()
    writer = engine.writer("sales.orders")
    real_load = writer.load
    raced: list[bool] = []

    def load_after_the_expiry() -> Any:
        if not raced:
            raced.append(True)
            table = real_load()
            assert table is not None
            ids = committed_event_ids(table)
            project.ledger.mark_committed([event_id], table="sales.orders", snapshot_id=ids[event_id], stats={})
            expire(project.catalog, "sales.orders", table, 1, 0.0, now=time.time())
        return real_load()

    writer.load = load_after_the_expiry  # type: ignore[method-assign]
    engine.drain()
    assert raced and event_id not in committed_event_ids(project.catalog.load_table("sales.orders"))
    assert project.sql("select count(*) as n from sales.orders where id = 100").to_pylist() == [{"n": 1}]

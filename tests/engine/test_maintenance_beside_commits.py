"""Maintenance on its own thread (`process: false`; the maintenance process: test_maintenance_process.py), racing the committer on the same table: no commit waits for it,
and no row is lost, doubled or brought back, whatever the write mode."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.lake import maintain as maintain_module
from icefloe.lake import maintain_compact
from icefloe.ledger.base import Event
from icefloe.upkeep import JOB_KIND
from tests.helpers import ORDERS, csv_file, make_project, wait_for

# a run after every commit, compacting any two small files and expiring all but the newest commit
EAGER = {"process": False, "every_commits": 1, "keep_snapshots": 1, "compact_min_files": 2, "target_file_bytes": "1MB"}
MODES = ["append", "overwrite", "upsert", "replace_source"]


def _project(root: Path, mode: str, maintenance: dict[str, Any]) -> Project:
    write: dict[str, Any] = {"table": "sales.orders", "mode": mode}
    if mode == "upsert":
        write["key"] = ["id"]
    return Project(make_project(root, {"orders": {**ORDERS, "write": write}}, maintenance=maintenance))


def _files(mode: str, n: int) -> list[tuple[str, list[int], int]]:
    """(object key, ids, amount) per landing; upserts overlap in keys, replace_source lands new
    versions of the same three objects."""
    if mode == "upsert":
        return [(f"u{i}.csv", [i, i + 1, i + 2], i) for i in range(n)]
    if mode == "replace_source":
        return [(f"r{i % 3}.csv", [10 * i, 10 * i + 1], i) for i in range(n)]
    return [(f"{mode[0]}{i}.csv", [3 * i, 3 * i + 1, 3 * i + 2], i) for i in range(n)]


class _Commits:
    """Counts the engine's commits, so a maintenance run can wait for one to land under it."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False
        self.changed = threading.Condition()

    def seen(self, ev: Event, state: str) -> None:
        if state == "committed":
            with self.changed:
                self.count += 1
                self.changed.notify_all()

    def wait_for_next(self, timeout: float = 5.0) -> None:
        with self.changed:
            start = self.count
            self.changed.wait_for(lambda: self.count > start or self.done, timeout)

    def finish(self) -> None:
        with self.changed:
            self.done = True
            self.changed.notify_all()


def _land_and_commit(project: Project, engine: Any, key: str, ids: list[int], amount: int) -> None:
    path = csv_file(project.root / "landing" / key, "id,ts,amount", [f"{i},2026-01-01T00:00:00,{amount}.25" for i in ids])
    events = engine.land(project.sources["landing"], key)
    assert events

    def committed() -> bool:
        engine.step()
        return all((e := project.ledger.get(ev.id)) is not None and e.state == "committed" for ev in events)

    assert wait_for(committed, timeout=60), [project.ledger.get(ev.id) for ev in events]


def _rows(project: Project) -> list[dict[str, Any]]:
    return project.sql("select id, amount from sales.orders order by id, amount").to_pylist()


@pytest.mark.parametrize("mode", MODES)
def test_maintenance_racing_commits_leaves_the_rows_a_serial_run_leaves(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(mode, 12)
    serial = _project(tmp_path / "serial", mode, {"enabled": False})
    engine = serial.engine()
    for key, ids, amount in files:
        _land_and_commit(serial, engine, key, ids, amount)
    engine.drain()

    conflicts: list[int] = []
    recheck = maintain_compact._recheck

    def counted(*args: Any) -> Any:
        conflicts.append(1)
        return recheck(*args)

    commits = _Commits()

    def before_commit(attempt: int) -> None:
        if attempt == 0:  # every compaction's plan is overtaken by a commit before it commits
            commits.wait_for_next()

    monkeypatch.setattr(maintain_compact, "_recheck", counted)
    monkeypatch.setattr(maintain_compact, "_before_commit", before_commit)
    project = _project(tmp_path / "racing", mode, EAGER)
    engine = project.engine()
    engine.on_event = commits.seen
    engine.start()
    for key, ids, amount in files:
        _land_and_commit(project, engine, key, ids, amount)
    commits.finish()
    engine.drain()

    assert _rows(project) == _rows(serial)
    assert {ev.state for ev in project.ledger.events()} == {"committed"}
    jobs = project.ledger.jobs(kind=JOB_KIND, limit=1000)
    assert jobs and {j.state for j in jobs} == {"succeeded"}
    assert sum(j.detail["expired_snapshots"] for j in jobs) > 0
    if mode != "overwrite":  # an overwrite leaves one file: nothing to compact
        assert conflicts, "no compaction raced a commit"
        assert sum(j.detail["files_compacted"] for j in jobs) > 0


def test_a_slow_maintenance_run_does_not_hold_up_the_next_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    real = maintain_module.maintain

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(10)  # before the fix this ran in the committing loop: the commit below came after it
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(maintain_module, "maintain", slow)
    project = _project(tmp_path / "p", "append", EAGER)
    engine = project.engine()
    engine.start()
    _land_and_commit(project, engine, "a.csv", [1], 1)
    assert wait_for(started.is_set, timeout=30)
    _land_and_commit(project, engine, "b.csv", [2], 2)
    assert not finished.is_set()  # committed while the run was still going
    release.set()
    engine.drain()  # waits for the run it handed over
    assert finished.is_set()
    assert [j.state for j in project.ledger.jobs(kind=JOB_KIND)][0] == "succeeded"
    assert _rows(project) == [{"id": 1, "amount": Decimal("1.25")}, {"id": 2, "amount": Decimal("2.25")}]


def test_a_stopped_worker_does_not_wait_for_a_stuck_maintenance_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    real = maintain_module.maintain

    def stuck(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(maintain_module, "maintain", stuck)
    monkeypatch.setattr("icefloe.engine.maintenance.STOP_GRACE", 0.1)
    project = _project(tmp_path / "p", "append", EAGER)
    csv_file(project.root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00"])
    stop = threading.Event()
    served = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    served.start()
    try:
        assert wait_for(started.is_set, timeout=30)
        stop.set()
        served.join(timeout=30)
        assert not served.is_alive()  # returned with the run still stuck
        assert not release.is_set()
    finally:
        release.set()
        for thread in threading.enumerate():  # the run it left behind ends before the next test
            if thread.name == "icefloe-maintenance":
                thread.join(30)
    assert _rows(project) == [{"id": 1, "amount": Decimal("1.00")}]



def test_an_ingest_does_not_wait_for_the_maintenance_an_earlier_ingest_made_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    real = maintain_module.maintain

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(30)  # before the fix ingest's drain waited here, so the second ingest came after it
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(maintain_module, "maintain", slow)
    project = _project(tmp_path / "p", "append", EAGER)
    first = csv_file(tmp_path / "in" / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00"])
    second = csv_file(tmp_path / "in" / "b.csv", "id,ts,amount", ["2,2026-01-01T00:00:00,2.00"])
    waiter = threading.Thread(target=lambda: [project.ingest([first]), project.ingest([second])], daemon=True)
    waiter.start()
    assert wait_for(started.is_set, timeout=30)
    waiter.join(timeout=30)
    assert not waiter.is_alive()  # both ingests returned while the run was still going
    assert not finished.is_set()
    assert [e.state for e in project.ledger.events()] == ["committed", "committed"]
    release.set()
    project.close()  # waits for the run the ingests handed over
    assert finished.is_set()
    with Project(project.root) as again:
        assert [j.state for j in again.ledger.jobs(kind=JOB_KIND)][0] == "succeeded"

"""`Project.run` returns what this engine did; another worker's commits meanwhile are not counted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import main
from tests.helpers import ORDERS, csv_file, make_project


def _files(root: Path, names: list[str]) -> None:
    for n, name in enumerate(names):
        csv_file(root / "landing" / name, "id,ts,amount", [f"{n * 10 + i},2026-01-01 00:00:00,1" for i in range(n + 1)])
        time.sleep(0.01)  # distinct mtimes: landing order follows the names


def test_run_once_returns_a_summary_of_its_own_events(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _files(root, ["a.csv", "b.csv"])
    csv_file(root / "landing" / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    project = Project(root)
    summary = project.run(once=True)
    assert summary is not None
    assert (summary.committed, summary.dead, summary.discarded, summary.retrying, summary.pending) == (2, 1, 0, 0, 0)
    assert summary.rows == 1 + 2
    again = project.run(once=True)  # nothing new: a second run did nothing
    assert (again.committed, again.dead, again.rows) == (0, 0, 0)
    project.close()


def test_stopped_before_done_leaves_pending_in_the_summary(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _files(root, ["a.csv"])
    stop = threading.Event()
    stop.set()
    with Project(root) as project:
        summary = project.run(once=True, stop=stop)
        assert (summary.committed, summary.pending, summary.done) == (0, 1, False)


def _held_by_another_worker(root: Path) -> tuple[Project, threading.Thread]:
    """Another worker leases the oldest event, and commits it only once the run under test has
    committed everything else: so it commits while that run is still going."""
    other = Project(root)
    engine = other.engine()
    engine.reconcile()
    (held,) = other.ledger.lease(engine.owner, limit=1, ttl=120)
    assert held.key == "a.csv"

    def commit_later() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if sum(e.state == "committed" for e in other.ledger.events()) == 2:
                break
            time.sleep(0.02)
        engine._process(held)
        engine._flush(force=True)

    thread = threading.Thread(target=commit_later)
    thread.start()
    return other, thread


def test_run_does_not_count_another_workers_commits(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _files(root, ["a.csv", "b.csv", "c.csv"])
    other, thread = _held_by_another_worker(root)
    with Project(root) as project:
        summary = project.run(once=True)  # waits for the other worker's event, then returns
        thread.join(timeout=60)
        assert {e.state for e in project.ledger.events()} == {"committed"}
        assert (summary.committed, summary.rows, summary.pending) == (2, 2 + 3, 0)
    other.close()


def test_cli_run_line_counts_only_its_own_commits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _files(root, ["a.csv", "b.csv", "c.csv"])
    other, thread = _held_by_another_worker(root)
    try:
        main(["run", "-p", str(root), "--once"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    thread.join(timeout=60)
    _, err = capsys.readouterr()
    assert code == 0 and "committed 2," in err, err
    assert sum(e.state == "committed" for e in other.ledger.events()) == 3
    other.close()

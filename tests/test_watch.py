"""`run` without --once: watchdog notices files as they land; temp names are never taken."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, make_project, wait_for


def test_running_worker_picks_up_landed_files_and_ignores_temp_names(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    (root / "landing/early.csv").write_text("id,ts,amount\n1,2026-01-01 00:00:00,1\n")  # landed before start
    project = Project(root)
    stop = threading.Event()
    worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        committed = lambda: [e.key for e in project.ledger.events(states=["committed"])]  # noqa: E731
        assert wait_for(lambda: committed() == ["early.csv"], timeout=20)
        partial = root / "landing/late.csv.part"
        partial.write_text("id,ts,amount\n2,2026-01-01 00:00:00,1\n")
        (root / "landing/.hidden.csv").write_text("id,ts,amount\n3,2026-01-01 00:00:00,1\n")
        time.sleep(0.3)
        assert [e.key for e in project.ledger.events()] == ["early.csv"]
        os.replace(partial, root / "landing/late.csv")
        assert wait_for(lambda: sorted(committed()) == ["early.csv", "late.csv"], timeout=20)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 2}]


def test_a_file_still_being_written_is_taken_only_when_complete(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    # a settle window far above the writer's pauses, so a busy CI machine cannot split the file
    config = (root / "icefloe.yaml").read_text().replace("settle: 10ms", "settle: 500ms")
    assert "settle: 500ms" in config
    (root / "icefloe.yaml").write_text(config)
    project = Project(root)
    stop = threading.Event()
    worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        with (root / "landing/slow.csv").open("w") as fh:
            fh.write("id,ts,amount\n")
            for i in range(20):
                fh.write(f"{i},2026-01-01 00:00:00,1\n")
                fh.flush()
                time.sleep(0.002)
        assert wait_for(lambda: [e.state for e in project.ledger.events()] == ["committed"], timeout=20)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 20}]

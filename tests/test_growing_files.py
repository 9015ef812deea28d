"""Issue 8 item 4: a file still being written is taken once, whole; and in an append table a new
version of an object replaces the rows its earlier version brought (never the same rows twice)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from icefloe import Project
from tests.helpers import ORDERS, make_project, wait_for

ROW = "{},2026-01-01 00:00:00,1.00\n"



def _ids(project: Project, table: str = "sales.orders") -> list[int]:
    return [r["id"] for r in project.sql(f"select id from {table} order by id").to_pylist()]


def test_three_appends_to_one_file_give_each_row_once(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    path = root / "landing" / "log.csv"
    path.write_text("id,ts,amount\n")
    for i in range(3):
        with path.open("a") as fh:  # `>> log.csv`
            fh.write(ROW.format(i))
        time.sleep(0.02)
        Project(root).run(once=True)
    project = Project(root)
    assert _ids(project) == [0, 1, 2]  # once: [0, 0, 0, 1, 1, 2]
    assert [e.state for e in project.ledger.events()] == ["committed"] * 3


def test_two_versions_in_one_batch_and_rows_written_ahead_are_replaced_too(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "batch": {"spill_bytes": 1}}  # every event writes its rows ahead of the commit
    root = make_project(tmp_path / "p", {"orders": pipeline})
    project = Project(root)
    path = root / "landing" / "log.csv"
    path.write_text("id,ts,amount\n" + ROW.format(1))
    project.run(once=True)
    engine, source = project.engine(), project.sources["landing"]
    with path.open("a") as fh:
        fh.write(ROW.format(2))
    engine.land(source, "log.csv")
    (root / "landing" / "other.csv").write_text("id,ts,amount\n" + ROW.format(9))
    engine.land(source, "other.csv")
    engine.drain()
    assert _ids(project) == [1, 2, 9]  # once: [1, 1, 2, 9]


def test_a_writer_that_pauses_mid_file_is_taken_once_with_the_default_settle(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    del config["sources"]["landing"]["settle"]  # the default: the point of this test
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    project = Project(root)
    stop = threading.Event()
    worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        time.sleep(0.5)  # the worker is watching
        with (root / "landing" / "slow.csv").open("w") as fh:
            fh.write("id,ts,amount\n" + "".join(ROW.format(i) for i in range(1, 102)))
            fh.flush()
            time.sleep(1.5)  # a pause mid-file (a slow network copy, a batch job between chunks)
            fh.write("".join(ROW.format(i) for i in range(102, 201)))
        assert wait_for(lambda: [e.state for e in project.ledger.events()] == ["committed"], timeout=30)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert _ids(project) == list(range(1, 201))  # once: rows 1-101 twice
    assert len(project.ledger.events()) == 1


def test_the_default_settle_is_measured_in_seconds() -> None:
    from icefloe.config import SourceConfig

    assert SourceConfig(path="landing").settle >= 1.0


def test_run_once_does_not_wait_for_a_file_renamed_away_before_it_settled(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["sources"]["landing"]["settle"] = "1s"
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    fresh = root / "landing" / "writing.csv"
    fresh.write_text("id,ts,amount\n" + ROW.format(1))  # just written: not settled yet
    project = Project(root)
    engine = project.engine()
    engine.reconcile()
    assert ("landing", "writing.csv") in engine._candidates
    fresh.rename(root / "landing" / "done.csv")  # the writer renames it into its final name
    done = threading.Thread(target=engine.drain, daemon=True)
    done.start()
    done.join(timeout=30)
    assert not done.is_alive()  # once: waited forever for writing.csv to settle
    assert _ids(project) == [1]

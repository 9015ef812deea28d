"""A file the scan at start finds still settling (written just before the worker started) must
not be overtaken by a newer file that a close-write notice reports complete: in an upsert the
newer file must win, so a finished file waits for older files that are still settling."""

from __future__ import annotations

import time
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, make_project

UPSERT = {**ORDERS, "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]}}


def _write(path: Path, amount: str) -> None:
    path.write_text(f"id,ts,amount\n42,2026-01-01 00:00:00,{amount}\n")


def test_a_newer_closed_file_waits_for_an_older_one_still_settling(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": UPSERT})
    config = (root / "icefloe.yaml").read_text().replace("settle: 10ms", "settle: 700ms")
    (root / "icefloe.yaml").write_text(config)
    project = Project(root)
    engine, source = project.engine(), project.sources["landing"]
    old, new = root / "landing" / "u_203.csv", root / "landing" / "u_277.csv"
    _write(old, "1.00")  # closed just before the worker started: the scan cannot know
    engine.start()
    engine.reconcile()  # too fresh to take: it waits to settle
    time.sleep(0.05)
    _write(new, "2.00")
    engine.notice(source, new.name, True)  # the watcher saw this one closed
    deadline = time.time() + 10
    while time.time() < deadline and not (len(project.ledger.events()) == 2 and project.ledger.pending_count() == 0):
        engine.step()
        time.sleep(0.02)
    engine._flush(force=True)
    engine.sign_off()
    events = sorted(project.ledger.events(), key=lambda e: e.landed_at)
    assert [e.key for e in events] == ["u_203.csv", "u_277.csv"]  # once: u_277 landed first
    assert project.sql("select amount from sales.orders").to_pylist()[0]["amount"] == 2  # once: 1.00

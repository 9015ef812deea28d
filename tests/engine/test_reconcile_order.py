"""Issue 8 item 5: files that piled up while no worker ran land oldest first (by modification
time, ties by name), so the newest file wins an upsert whatever the names."""

from __future__ import annotations

import os
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, make_project

UPSERT = {**ORDERS, "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]}}


def _write(path: Path, amount: str, mtime: float) -> None:
    path.write_text(f"id,ts,amount\n42,2026-01-01 00:00:00,{amount}\n")
    os.utime(path, (mtime, mtime))


def test_the_newest_file_wins_an_upsert_whatever_its_name(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": UPSERT})
    _write(root / "landing" / "zz.csv", "1.00", 1_700_000_000)  # first
    _write(root / "landing" / "aa.csv", "2.00", 1_700_000_060)  # a minute later
    project = Project(root)
    project.run(once=True)
    assert project.sql("select id, amount from sales.orders").to_pylist()[0]["amount"] == 2  # once: 1.00 (name order)
    events = project.ledger.events()
    assert [e.key for e in sorted(events, key=lambda e: e.landed_at)] == ["zz.csv", "aa.csv"]


def test_equal_modification_times_land_in_name_order(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": UPSERT})
    for name, amount in (("b.csv", "2.00"), ("a.csv", "1.00"), ("c/a.csv", "3.00")):
        (root / "landing" / name).parent.mkdir(parents=True, exist_ok=True)
        _write(root / "landing" / name, amount, 1_700_000_000)
    project = Project(root)
    project.run(once=True)
    assert [e.key for e in sorted(project.ledger.events(), key=lambda e: e.landed_at)] == ["a.csv", "b.csv", "c/a.csv"]
    assert project.sql("select amount from sales.orders").to_pylist()[0]["amount"] == 3

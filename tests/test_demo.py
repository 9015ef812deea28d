"""`icefloe demo` builds, runs and reports; the project it leaves holds what the report claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.demo import run_demo


def test_demo_runs_and_leaves_a_consistent_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(str(tmp_path / "demo"))
    out = capsys.readouterr().out
    assert "twelve" in out and "demo finished" in out  # the DLQ reason is in the report
    with Project(tmp_path / "demo") as project:
        counts = project.sql(
            "select (select count(*) from sales.orders) as orders, (select count(*) from web.clicks) as clicks,"
            " (select count(*) from sales.inventory) as inventory"
        ).to_pylist()
        assert counts == [{"orders": 5000, "clicks": 3000, "inventory": 2}]
        # the re-landed 01.csv doubled its amounts through upsert: order 1 has the new value
        (first,) = project.sql("select amount, _icefloe_source from sales.orders where order_id = 1").to_pylist()
        assert first["_icefloe_source"] == "landing:orders/2026/11/01.csv"
        (dead,) = project.dead_letters()
        assert dead.key == "orders/2026/11/malformed.csv" and "malformed.csv:4" in (dead.error or "")
        assert project.sql("select count(*) as n from icefloe.quarantine").to_pylist() == [{"n": 1}]
        upserts = [e for e in project.ledger.events(states=["committed"]) if e.key == "orders/2026/11/01.csv"]
        assert len(upserts) == 2  # the original and the corrected re-landing, both committed

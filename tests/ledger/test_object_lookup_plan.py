"""An object's ledger lookups use the object index, not the backlog index: their cost must not grow
with the number of committed events (it did once the /metrics gauges' index arrived)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.ledger import open_ledger

LOOKUPS = [
    "SELECT 1 FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed' AND id!=? LIMIT 1",
    "SELECT content_hash FROM events WHERE source=? AND key=? AND pipeline=? AND state='committed'",
    "SELECT 1 FROM events WHERE source=? AND key=? AND version=? AND state='discarded'",
    "DELETE FROM events WHERE state='unrouted' AND source=? AND key=?",
]


@pytest.mark.parametrize("sql", LOOKUPS)
def test_object_lookups_search_the_object_index(tmp_path: Path, sql: str) -> None:
    led = open_ledger("sqlite:///ledger.db", tmp_path)
    try:
        import sqlite3

        db = sqlite3.connect(tmp_path / "ledger.db")
        params = tuple("x" for _ in range(sql.count("?")))
        plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
        db.close()
    finally:
        led.close()
    assert "events_object" in plan, plan  # events_object or events_object_pipeline

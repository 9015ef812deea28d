"""An object replaced before its event ran, then written back to those first bytes before the
replacement was ever landed: the bytes in the folder must still be loaded. (The first event is
discarded as superseded; the bytes landing again are a new landing, not "the current version
delivered again", or the file would sit in the folder and never reach the table.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import ORDERS, make_project

A = "id,ts,amount\n1,2026-01-01 00:00:00,1.00\n"
B = "id,ts,amount\n1,2026-01-01 00:00:00,2.00\n"
MODES = {
    "append": {"table": "sales.orders"},
    "upsert": {"table": "sales.orders", "mode": "upsert", "key": ["id"]},
    "replace_source": {"table": "sales.orders", "mode": "replace_source"},
}


def _replace(path: Path, text: str) -> None:
    """Write-then-rename, as a careful writer does: a new inode each time."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.parametrize("mode", list(MODES))
def test_bytes_written_back_before_the_replacement_landed_are_loaded(tmp_path: Path, mode: str) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "write": MODES[mode]}})
    project = Project(root)
    engine, source = project.engine(), project.sources["landing"]
    path = root / "landing" / "r.csv"
    _replace(path, A)
    (first,) = engine.land(source, "r.csv")
    _replace(path, B)  # replaced before the event ran: it is discarded as superseded
    engine.step()
    assert project.ledger.get(first.id).state == "discarded"  # type: ignore[union-attr]
    _replace(path, A)  # ...and written back before B was ever landed
    engine.drain()
    assert [e.content_hash for e in project.ledger.events()] == [first.content_hash] * 2  # once: 1 event
    rows = project.sql("select id, amount from sales.orders").to_pylist()
    assert [(r["id"], str(r["amount"])) for r in rows] == [(1, "1.00")]
    # a restart's scan of the same file is still a no-op
    assert Project(root).run(once=True).committed == 0
    assert len(project.ledger.events()) == 2

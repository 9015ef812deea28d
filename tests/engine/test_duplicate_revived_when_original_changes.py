"""`dedupe: {content: true}` skips a file whose bytes another object brought. If that other
object is later replaced (a new version in an append or replace_source table, which removes the
rows it brought), the skipped file's rows must not silently vanish with them: the skipped file
is loaded then, as the holder of those bytes."""

from __future__ import annotations

import pytest

from icefloe import Project
from tests.helpers import ORDERS, make_project

A = "id,ts,amount\n1,2026-01-01 00:00:00,1.00\n"
B = "id,ts,amount\n9,2026-01-01 00:00:00,9.00\n"


@pytest.mark.parametrize("mode", ["append", "replace_source"])
def test_a_skipped_duplicate_is_loaded_once_its_original_is_replaced(tmp_path, mode: str) -> None:  # type: ignore[no-untyped-def]
    pipeline = {**ORDERS, "dedupe": {"content": True}, "write": {"table": "sales.orders", "mode": mode}}
    root = make_project(tmp_path / "p", {"orders": pipeline})
    landing = root / "landing"
    (landing / "one.csv").write_text(A)
    Project(root).run(once=True)
    (landing / "two.csv").write_text(A)
    (landing / "three.csv").write_text(A)
    assert Project(root).run(once=True).discarded == 2
    (landing / "one.csv").write_text(B)  # one.csv no longer holds A: its A rows leave the table
    Project(root).run(once=True)
    project = Project(root)
    rows = project.sql("select id, _icefloe_source as src from sales.orders order by id").to_pylist()
    assert [r["id"] for r in rows] == [1, 9]  # once: [9] (A's rows gone with one.csv's old version)
    assert rows[0]["src"] == "landing:three.csv" or rows[0]["src"] == "landing:two.csv"
    assert Project(root).run(once=True).committed == 0  # and nothing more on the next run
    assert len(project.sql("select * from sales.orders").to_pylist()) == 2


def test_a_skipped_duplicate_deleted_since_stays_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pipeline = {**ORDERS, "dedupe": {"content": True}}
    root = make_project(tmp_path / "p", {"orders": pipeline})
    landing = root / "landing"
    (landing / "one.csv").write_text(A)
    Project(root).run(once=True)
    (landing / "two.csv").write_text(A)
    Project(root).run(once=True)
    (landing / "two.csv").unlink()
    (landing / "one.csv").write_text(B)
    summary = Project(root).run(once=True)
    assert (summary.committed, summary.dead) == (1, 0)
    assert [r["id"] for r in Project(root).sql("select id from sales.orders").to_pylist()] == [9]


@pytest.mark.parametrize("mode", ["append", "replace_source"])
def test_a_new_version_that_is_a_duplicate_still_takes_its_old_rows_away(tmp_path, mode: str) -> None:  # type: ignore[no-untyped-def]
    pipeline = {**ORDERS, "dedupe": {"content": True}, "write": {"table": "sales.orders", "mode": mode}}
    root = make_project(tmp_path / "p", {"orders": pipeline})
    landing = root / "landing"
    (landing / "one.csv").write_text(B)
    (landing / "two.csv").write_text(A)
    Project(root).run(once=True)
    (landing / "one.csv").write_text(A)  # one.csv now holds what two.csv brought: B is gone from it
    summary = Project(root).run(once=True)
    assert (summary.committed, summary.dead) == (1, 0)
    rows = Project(root).sql("select id, _icefloe_source as src from sales.orders order by id").to_pylist()
    assert rows == [{"id": 1, "src": "landing:two.csv"}]  # once: one.csv's old row 9 stayed

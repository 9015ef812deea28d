"""An object store has no local path: the engine reads its objects from `open()` streams
(spooled for the readers), exactly as it reads a folder's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.sources.folder import FolderSource
from icefloe.sources.memory import MemorySource
from tests.helpers import ORDERS, make_project

ROWS = b"id,ts,amount\n1,2026-01-01 00:00:00,1.00\n2,2026-01-01 00:00:00,2.50\n"


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, MemorySource]:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    store = MemorySource("landing")
    project.runtime.__dict__["sources"] = {"landing": store}  # the cached property, swapped for the fake
    # nothing may fall back to the folder's files
    monkeypatch.setattr(FolderSource, "local_path", lambda self, key: pytest.fail("read from a folder"))
    return project, store


def test_objects_with_no_local_path_are_read_from_their_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, store = _project(tmp_path, monkeypatch)
    store.write("in/a.csv", ROWS)
    with project:
        assert project.run(once=True).committed == 1
        assert project.sql("select sum(amount) as s from sales.orders").to_pylist()[0]["s"] == pytest.approx(3.5)
        (event,) = project.ledger.events()
        assert event.key == "in/a.csv" and event.uri == "memory://landing/in/a.csv"


def test_ingest_puts_onto_a_store_and_a_rewrite_is_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, _ = _project(tmp_path, monkeypatch)
    local = tmp_path / "a.csv"
    local.write_bytes(ROWS)
    with project:
        (first,) = project.ingest([local])
        assert first.state == "committed"
        local.write_bytes(ROWS.replace(b"2.50", b"7.50"))
        (second,) = project.ingest([local])
        assert second.state == "committed" and second.version == first.version + 1
        # the append table keeps the newest version of each object
        assert project.sql("select sum(amount) as s from sales.orders").to_pylist()[0]["s"] == pytest.approx(8.5)


def test_an_object_replaced_before_it_ran_is_superseded_by_its_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, store = _project(tmp_path, monkeypatch)
    with project:
        engine = project.engine()
        (old,) = engine.land(store, store.write("a.csv", ROWS))
        store.write("a.csv", ROWS.replace(b"2.50", b"9.00"))  # rewritten before the event ran
        engine.drain()
        assert project.ledger.get(old.id).state == "discarded"  # type: ignore[union-attr]
        assert project.sql("select sum(amount) as s from sales.orders").to_pylist()[0]["s"] == pytest.approx(10.0)

"""Landing one object costs the same however many the source holds: only reconcile lists a source
(at start and on `sources.NAME.reconcile`), a page at a time with one stamp lookup per page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from icefloe import Project
from icefloe.config import load_config
from icefloe.engine import landing
from icefloe.errors import ConfigError
from icefloe.ledger.sqlite import SqliteLedger
from icefloe.sources.base import ListPage
from icefloe.sources.folder import FolderSource
from tests.helpers import ORDERS, csv_file, make_project, wait_for


class Counted:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.lock = threading.Lock()

    def __len__(self) -> int:
        with self.lock:
            return len(self.calls)


@pytest.fixture
def lists(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    counted = Counted()
    original = FolderSource.list

    def counting(self: FolderSource, after: str | None = None, limit: int = 1000) -> ListPage:
        with counted.lock:
            counted.calls.append(after)
        return original(self, after, limit)

    monkeypatch.setattr(FolderSource, "list", counting)
    yield counted


@pytest.fixture
def stamps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many keys each batched stamp lookup (`object_stamps`) asked for."""
    asked: list[int] = []
    original = SqliteLedger.object_stamps
    monkeypatch.setattr(
        SqliteLedger, "object_stamps", lambda self, s, keys: asked.append(len(keys)) or original(self, s, keys)
    )
    return asked


@pytest.fixture
def paged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose landing folder holds 0.csv .. 4.csv, listed and looked up 2 at a time."""
    monkeypatch.setattr(landing, "PAGE", 2)
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    for n in range(5):
        _orders(root / "landing" / f"{n}.csv", n * 10)
    return root


def _orders(path: Path, first: int, n: int = 2) -> Path:
    return csv_file(path, "id,ts,amount", [f"{i},2026-01-01 00:00:00,1.00" for i in range(first, first + n)])


def _set_source(root: Path, **values: Any) -> None:
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["sources"]["landing"].update(values)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_ingest_lands_only_the_files_it_was_given_and_never_lists_the_source(tmp_path: Path, lists: Counted) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    with Project(root) as project:
        for n in range(3):
            project.ingest([_orders(tmp_path / f"in{n}.csv", n * 10)])
        _orders(root / "landing" / "dropped.csv", 100)  # dropped by hand: the next reconcile's job
        (event,) = project.ingest([_orders(tmp_path / "last.csv", 200)])
        assert event.state == "committed"
        assert len(lists) == 0  # once: every ingest walked the whole folder
        assert sorted(e.key for e in project.ledger.events()) == ["in0.csv", "in1.csv", "in2.csv", "last.csv"]
        project.run(once=True)  # run --once reconciles once, at start
        assert len(lists) == 1
        assert "dropped.csv" in {e.key for e in project.ledger.events(states=["committed"])}


def test_one_ingest_does_not_list_a_5000_file_folder(tmp_path: Path, lists: Counted, stamps: list[int]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    for n in range(5000):
        (root / "landing" / f"old_{n:05}.csv").write_text("id,ts,amount\n")
    with Project(root) as project:
        (event,) = project.ingest([_orders(tmp_path / "new.csv", 1)])
        assert event.state == "committed" and len(lists) == 0 and stamps == []
        assert [e.key for e in project.ledger.events()] == ["new.csv"]


def test_reconcile_pages_the_listing_with_one_stamp_lookup_per_page(
    paged: Path, lists: Counted, stamps: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    single: list[str] = []
    one = SqliteLedger.object_stamp
    monkeypatch.setattr(SqliteLedger, "object_stamp", lambda self, s, key: single.append(key) or one(self, s, key))
    with Project(paged) as project:
        project.run(once=True)
        assert lists.calls == [None, "1.csv", "3.csv"] and stamps == [2, 2, 1]
        assert project.ledger.pending_count() == 0 and len(project.ledger.events()) == 5
        single.clear()
        project.run(once=True)  # nothing changed: no per-object lookups at all
        assert single == [] and stamps[3:] == [2, 2, 1]


def test_a_running_worker_lands_watch_notices_without_listing_after_its_start(tmp_path: Path, lists: Counted) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _orders(root / "landing" / "before.csv", 1)
    with Project(root) as project:
        stop = threading.Event()
        worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
        worker.start()
        try:
            assert wait_for(lambda: len(project.ledger.events(states=["committed"])) == 1, timeout=30)
            started = len(lists)
            for n in range(3):
                _orders(tmp_path / f"w{n}.csv", 10 * (n + 1)).rename(root / "landing" / f"w{n}.csv")
            assert wait_for(lambda: len(project.ledger.events(states=["committed"])) == 4, timeout=30)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert started == 1 and len(lists) == 1  # the start reconcile only


def test_a_running_worker_reconciles_again_on_the_sources_schedule(
    tmp_path: Path, lists: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _set_source(root, reconcile="300ms")
    monkeypatch.setattr(FolderSource, "watch", lambda self, on_change: lambda: None)  # every notice missed
    with Project(root) as project:
        assert project.config.sources["landing"].reconcile == 0.3
        stop = threading.Event()
        worker = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
        worker.start()
        try:
            assert wait_for(lambda: len(lists) >= 1, timeout=30)
            _orders(root / "landing" / "missed.csv", 1)  # only a later reconcile pass can find it
            assert wait_for(lambda: len(project.ledger.events(states=["committed"])) == 1, timeout=30)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert len(lists) >= 2


def test_unrouted_objects_are_routed_again_a_ledger_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(landing, "PAGE", 2)
    root = make_project(
        tmp_path / "p", {"orders": ORDERS}, routes=[{"source": "landing", "match": "x/*", "pipeline": "orders"}]
    )
    for n in range(5):
        _orders(root / "landing" / f"{n}.csv", n * 10)
    with Project(root) as project:
        project.run(once=True)
        assert {e.state for e in project.ledger.events()} == {"unrouted"}
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["routes"][0]["match"] = "*.csv"
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    pages: list[int | None] = []
    original = SqliteLedger.page
    monkeypatch.setattr(SqliteLedger, "page", lambda self, **kw: pages.append(kw.get("after")) or original(self, **kw))
    monkeypatch.setattr(SqliteLedger, "events", lambda self, **kw: pytest.fail("reroute loaded every event"))
    with Project(root) as project:
        assert project.run(once=True).committed == 5
    assert len(pages) == 3 and pages[0] is None  # 2 + 2 + 1 unrouted events


def test_reconcile_is_a_duration_validated_with_its_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    assert load_config(root, environ={}).sources["landing"].reconcile == 300.0  # default 5m
    _set_source(root, reconcile="1m")
    assert load_config(root, environ={}).sources["landing"].reconcile == 60.0
    _set_source(root, reconcile="soon")
    with pytest.raises(ConfigError, match=r"icefloe.yaml:\d+.*reconcile.*not a duration"):
        load_config(root, environ={})


def test_status_counts_waiting_objects_a_page_at_a_time(tmp_path: Path, lists: Counted, stamps: list[int]) -> None:
    from icefloe.observe.backlog import waiting_objects

    root = make_project(tmp_path / "p", {"orders": ORDERS})
    for n in range(2500):
        (root / "landing" / f"{n:05}.csv").write_text("id,ts,amount\n")
    with Project(root) as project:
        waiting = waiting_objects(project)
    assert len(waiting) == 2500 and waiting[0].pipelines == ("orders",)
    assert lists.calls == [None, "00999.csv", "01999.csv"] and stamps == [1000, 1000, 500]


def test_a_reconcile_budget_slices_the_pass_and_lists_each_page_once(paged: Path, lists: Counted) -> None:
    with Project(paged) as project:
        lander = project.engine().lander
        landed = [lander.reconcile(budget=0)]
        while "landing" in lander.unfinished:  # a running worker steps between the slices
            # the slice's changes landed and its position is saved before the next slice
            assert project.ledger.listing_position("landing") == ["1.csv", "3.csv"][len(landed) - 1]
            landed.append(lander.reconcile(budget=0))
        assert landed == [2, 2, 1] and lists.calls == [None, "1.csv", "3.csv"]
        assert sorted(e.key for e in project.ledger.events()) == [f"{n}.csv" for n in range(5)]
        assert project.ledger.listing_position("landing") is None

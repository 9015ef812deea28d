"""`status`, `dlq list`, `trace` by name and `icefloe.events` ask the ledger for counts and pages:
none of them reads every event into memory (a ledger grows by every file ever landed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.ledger import Event, Ledger
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", {"orders": ORDERS})


@pytest.fixture
def unbounded(monkeypatch: pytest.MonkeyPatch, root: Path) -> Iterator[list[dict[str, Any]]]:
    """Every `Ledger.events()` call without a limit, from any ledger the project opens."""
    calls: list[dict[str, Any]] = []
    cls = type(Project(root).ledger)
    real = cls.events

    def spy(self: Ledger, **kwargs: Any) -> list[Event]:
        if kwargs.get("limit") is None:
            calls.append(kwargs)
        return real(self, **kwargs)

    monkeypatch.setattr(cls, "events", spy)
    yield calls


def _land(ledger: Ledger, key: str, pipelines: list[str] | None = None) -> list[Event]:
    return ledger.land(
        source="landing", key=key, uri=f"file:///landing/{key}", content_hash=key, size=1,
        pipelines=["orders"] if pipelines is None else pipelines,
    )  # fmt: skip


def _dead_and_queued(ledger: Ledger, n: int) -> list[str]:
    """n events landed, every other one dead: returns the dead ids in landing order."""
    landed = [e for i in range(n) for e in _land(ledger, f"orders/{i:04}.csv")]
    ledger.lease("w", limit=n, ttl=60)
    dead = landed[::2]
    for ev in dead:
        ledger.mark_failed(ev.id, error=f"bad {ev.key}", kind="DataError", transient=False, backoff=0, max_backoff=0)
    ledger.release([e.id for e in landed[1::2]], "w")
    return [e.id for e in dead]


def test_status_rows_come_from_ledger_counts_not_every_event(root: Path, unbounded: list[dict[str, Any]]) -> None:
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    project = Project(root)
    project.run(once=True)  # its reroute of unrouted objects pages too
    dead = _dead_and_queued(project.ledger, 6)
    held = _land(project.ledger, "orders/held.csv")
    project.ledger.lease("far:1:x", limit=10, ttl=600)  # another host's worker holds it
    rows = project.status()
    source = next(r for r in rows if r["kind"] == "source")
    pipeline = next(r for r in rows if r["kind"] == "pipeline")
    worker = next(r for r in rows if r["kind"] == "worker" and r["name"] == "far:1:x")
    assert (source["objects"], source["unrouted"]) == (8, 0)
    assert (pipeline["committed"], pipeline["dead"], pipeline["running"], pipeline["backlog"]) == (1, 3, 4, 4)
    assert pipeline["last_error"] == f"bad {project.ledger.get(dead[-1]).key}"  # type: ignore[union-attr]
    assert worker["running"] == 4 and held[0].id not in worker["orphaned"]  # alive: none orphaned
    assert unbounded == []
    project.close()


def test_dlq_list_pages_through_every_dead_event_exactly_once(
    root: Path, unbounded: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(root)
    dead = _dead_and_queued(project.ledger, 250)  # 125 dead, between queued ones
    project.close()
    seen: list[str] = []
    args = ["dlq", "list", "-p", str(root), "--format", "json", "--limit", "40"]
    while True:
        code, out, err = invoke(capsys, *args)
        assert code == 0, err
        page = json.loads(out)
        assert len(page) <= 40
        seen += [r["event"] for r in page]
        hint = re.search(r"(\d+) more: icefloe dlq list .*--after (\d+)", err)
        if hint is None:
            break
        assert int(hint[1]) == len(dead) - len(seen)
        args = ["dlq", "list", "-p", str(root), "--format", "json", "--limit", "40", "--after", hint[2]]
    assert seen == dead
    assert unbounded == []


def test_dlq_list_shows_a_first_page_and_how_to_get_the_next(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(root)
    dead = _dead_and_queued(project.ledger, 230)  # 115 dead
    assert [e.id for e in project.dead_letters()] == dead[:100]
    project.close()
    code, out, _ = invoke(capsys, "dlq", "list", "-p", str(root))
    assert code == 0
    assert re.search(rf"15 more: icefloe dlq list -p {re.escape(str(root))} --after \d+$", out.strip())


def test_trace_by_file_name_asks_the_ledger_for_that_name(root: Path, unbounded: list[dict[str, Any]]) -> None:
    project = Project(root)
    for i in range(50):
        _land(project.ledger, f"orders/{i}/other.csv")
    (ev,) = _land(project.ledger, "orders/2026/a.csv")
    for ref in ("a.csv", "orders/2026/a.csv", "landing:orders/2026/a.csv"):
        assert project.trace(ref)["event"]["id"] == ev.id, ref
    assert unbounded == []
    project.close()


def test_sql_counts_25000_events_read_a_page_at_a_time(root: Path, unbounded: list[dict[str, Any]]) -> None:
    project = Project(root)
    for i in range(25_000):
        _land(project.ledger, f"orders/{i}.csv", pipelines=["orders"] if i % 5 else [])
    got = project.sql("select count(*) as n, count(distinct id) as ids from icefloe.events")
    assert got.to_pylist() == [{"n": 25_000, "ids": 25_000}]
    by_state = project.sql("select state, count(*) as n from icefloe.events group by 1 order by 1").to_pylist()
    assert by_state == [{"state": "queued", "n": 20_000}, {"state": "unrouted", "n": 5_000}]
    assert unbounded == []
    assert project.sql("select count(distinct seq) as n from icefloe.events").to_pylist() == [{"n": 25_000}]
    project.close()


def test_a_query_of_the_quarantine_alone_does_not_copy_the_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "q", {"orders": {**ORDERS, "checks": [{"not_null": ["id"]}]}})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1", ",2026-01-01 00:00:00,2"])
    project = Project(root)
    project.run(once=True)
    reads: list[str] = []
    cls = type(project.ledger)
    for name in ("page", "events"):
        real = getattr(cls, name, None)
        if real is None:  # code from before paging: its full reads still count
            continue

        def spy(self: Ledger, *, _real: Any = real, _name: str = name, **kwargs: Any) -> list[Event]:
            reads.append(_name)
            return list(_real(self, **kwargs))

        monkeypatch.setattr(cls, name, spy)
    assert project.sql("select count(*) as n from icefloe.quarantine").to_pylist() == [{"n": 1}]
    assert reads == []
    assert project.sql('select count(*) as n from "icefloe"."events"').to_pylist() == [{"n": 1}]
    assert "page" in reads
    project.close()


def test_a_where_on_state_copies_only_those_events_and_the_next_query_sees_all(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from icefloe.query import QueryEngine

    project = Project(root)
    dead = _dead_and_queued(project.ledger, 30)
    asked: list[dict[str, Any]] = []
    cls = type(project.ledger)
    real = cls.page

    def spy(self: Ledger, **kwargs: Any) -> list[Event]:
        found = real(self, **kwargs)
        asked.append({**kwargs, "got": len(found)})
        return found

    monkeypatch.setattr(cls, "page", spy)
    with QueryEngine(project) as engine:
        got = engine.query("select id from icefloe.events where state = 'dead' and size > 0 order by seq")
        assert got.column("id").to_pylist() == dead
        assert sum(a["got"] for a in asked) == len(dead) and asked[0]["states"] == ["dead"]
        assert engine.query("select count(*) as n from icefloe.events").to_pylist() == [{"n": 30}]
        assert engine.query("select count(*) as n from icefloe.events where pipeline = 'orders'").to_pylist() == [{"n": 30}]
        assert engine.query("select count(*) as n from icefloe.events where state = 'queued'").to_pylist() == [{"n": 15}]
    project.close()

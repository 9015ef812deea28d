"""An Engine built from a Runtime of in-memory fakes: no project folder, no icefloe.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe.engine import Engine
from icefloe.ledger.base import HEARTBEAT_EVERY
from icefloe.runtime import Runtime
from tests.engine.fakes import FakeClock, MemoryQuarantine, MemorySource, fake_runtime
from tests.helpers import wait_for

ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long", "amount": "double"}},
    "write": {"table": "sales.orders"},
}


@pytest.fixture
def built(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Runtime, MemorySource]]:
    pipelines: dict[str, Any] = getattr(request, "param", {"orders": ORDERS})
    runtime, source = fake_runtime(tmp_path, pipelines)
    yield runtime, source
    runtime.close()


def _rows(runtime: Runtime, table: str = "sales.orders") -> list[dict[str, Any]]:
    data = runtime.catalog.load_table(table).scan().to_arrow()
    return sorted(data.select(["id", "amount"]).to_pylist(), key=lambda r: r["id"])


def test_an_object_in_a_memory_source_lands_and_commits(built: tuple[Runtime, MemorySource]) -> None:
    runtime, source = built
    source.add("a.csv", b"id,amount\n1,2.5\n2,4.0\n")
    engine = Engine(runtime)
    heard: list[str] = []
    engine.on_event = lambda ev, state: heard.append(state)
    engine.drain()
    (event,) = runtime.ledger.events()
    assert (event.source, event.key, event.state, event.table) == ("mem", "a.csv", "committed", "sales.orders")
    assert heard == ["committed"]
    assert _rows(runtime) == [{"id": 1, "amount": 2.5}, {"id": 2, "amount": 4.0}]
    assert engine.summary().committed == 1


@pytest.mark.parametrize("built", [{"orders": {**ORDERS, "checks": [{"range": {"amount": [0, None]}}]}}], indirect=True)
def test_a_quarantined_row_reaches_the_quarantine_sink(built: tuple[Runtime, MemorySource], tmp_path: Path) -> None:
    runtime, source = built
    source.add("a.csv", b"id,amount\n1,2.5\n2,-1.0\n")
    Engine(runtime).drain()
    (event,) = runtime.ledger.events()
    assert (event.state, event.rows_out, event.rows_quarantined) == ("committed", 1, 1)
    assert isinstance(runtime.quarantine, MemoryQuarantine)
    (key,) = runtime.quarantine.rows
    assert key == ("orders", event.id)
    assert runtime.quarantine.rows[key].select(["id", "_icefloe_check"]).to_pylist() == [{"id": 2, "_icefloe_check": "range(amount)"}]
    assert _rows(runtime) == [{"id": 1, "amount": 2.5}]
    assert not (tmp_path / ".icefloe").exists()  # nothing fell back on a project folder


@pytest.mark.parametrize("built", [{"orders": {**ORDERS, "batch": {"max_wait": "30s"}}}], indirect=True)
def test_a_waiting_batch_flushes_once_the_clock_passes_max_wait(built: tuple[Runtime, MemorySource]) -> None:
    runtime, source = built
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    source.add("a.csv", b"id,amount\n1,1.0\n")
    source.add("b.csv", b"id,amount\n2,2.0\n")
    engine = Engine(runtime)
    engine.reconcile()
    # another worker holds one object: more is coming for the table, so the engine's batch of
    # the other one waits for max_wait rather than committing at once
    (elsewhere,) = runtime.ledger.lease("host-b:1:bbbbbb", limit=1, ttl=600)
    mine = ({"a.csv", "b.csv"} - {elsewhere.key}).pop()
    assert engine.step()
    assert [ev.key for ev, _ in engine.buffers["sales.orders"].items] == [mine]
    clock.advance(29)
    assert not engine._flush(force=False)
    assert not runtime.catalog.table_exists("sales.orders")
    clock.advance(1)
    assert engine._flush(force=False)
    assert [e.key for e in runtime.ledger.events(states=["committed"])] == [mine]
    assert engine.summary().committed == 1


@pytest.mark.parametrize("built", [{"events": {"read": {"format": "ndjson"}, "write": {"table": "t.events"}}}], indirect=True)
def test_a_failing_pipeline_dead_letters_through_the_fakes(built: tuple[Runtime, MemorySource]) -> None:
    runtime, source = built
    source.add("bad.json", b'{"id": 1}\n{"id": \n')
    engine = Engine(runtime)
    heard: list[str] = []
    engine.on_event = lambda ev, state: heard.append(state)
    engine.drain()
    (event,) = runtime.ledger.events()
    assert event.state == "dead" and event.error and "bad.json" in event.error
    assert heard == ["dead"]
    assert [e.id for e in runtime.ledger.events(states=["dead"])] == [event.id]
    assert engine.summary().dead == 1 and not runtime.catalog.table_exists("t.events")


def test_the_keepalive_beats_when_the_clock_moves_on(built: tuple[Runtime, MemorySource], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, _ = built
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    beats: list[bool] = []
    beat = runtime.ledger.heartbeat

    def counted(owner: str, stopped: bool = False) -> None:
        beats.append(stopped)
        beat(owner, stopped=stopped)

    monkeypatch.setattr(runtime.ledger, "heartbeat", counted)
    engine = Engine(runtime)
    engine.start()
    try:
        assert beats == [False]  # the one at start, so `status` lists the worker at once
        clock.advance(HEARTBEAT_EVERY)
        # sooner than a wall-clock pacing could beat: it is the fake clock that moved it
        assert wait_for(lambda: len(beats) >= 2, timeout=HEARTBEAT_EVERY / 2)
    finally:
        engine.sign_off()
    assert beats[-1] is True

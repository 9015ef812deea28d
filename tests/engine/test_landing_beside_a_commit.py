"""A running worker lands what it is told of while a commit is in progress. A notice (an S3
notification, a NATS batch renamed into the spool) used to wait for the engine's one loop to end
its round, the commit included, before it became an event: publish -> landed ~640-780 ms under
load, most of it the commit in progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe.engine import Engine
from icefloe.runtime import Runtime
from tests.engine.fakes import MemorySource, fake_runtime

ORDERS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"}}


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[Runtime, MemorySource]]:
    runtime, source = fake_runtime(tmp_path, {"orders": ORDERS})
    yield runtime, source
    runtime.close()


def _until(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def _serving(engine: Engine) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    worker = threading.Thread(target=engine.serve, args=(stop,), daemon=True)
    worker.start()
    return worker, stop


def test_a_notice_during_a_long_commit_is_landed_before_that_commit_ends(
    built: tuple[Runtime, MemorySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, source = built
    engine = Engine(runtime)
    committing, release = threading.Event(), threading.Event()
    original = engine.committer._commit

    def slow(table: str, items: list[Any]) -> None:
        committing.set()
        assert release.wait(30), "the test never let the commit end"
        original(table, items)

    monkeypatch.setattr(engine.committer, "_commit", slow)
    worker, stop = _serving(engine)
    try:
        source.add("a.csv", b"id\n1\n")
        assert committing.wait(30), "a.csv never reached its commit"
        source.add("b.csv", b"id\n2\n")  # the watch tells the worker while a.csv's commit runs
        landed = _until(lambda: runtime.ledger.object_events("mem", "b.csv"), 5.0)
        assert not release.is_set()
        assert [ev.state for ev in landed] == ["queued"], "b.csv waited for the commit in progress to be landed"
        assert [ev.state for ev in runtime.ledger.object_events("mem", "a.csv")] == ["running"]
    finally:
        release.set()
        done = _until(lambda: len(runtime.ledger.events(states=["committed"])) == 2, 30.0)
        stop.set()
        worker.join(30)
    assert done and not worker.is_alive()
    rows = runtime.catalog.load_table("sales.orders").scan().to_arrow()
    assert sorted(rows.column("id").to_pylist()) == [1, 2]  # once each


def test_what_lands_during_a_round_does_not_hold_its_batch_open(
    built: tuple[Runtime, MemorySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round's batch commits at its end when nothing more was pending at its lease, as when
    landing ran in the round: a stream landing beside every round must not keep each batch open
    for its max_wait (the fake clock never reaches it here: the batch would wait for b.csv)."""
    runtime, source = built
    engine = Engine(runtime)
    original = engine._process_one

    def process(ev: Any) -> None:
        if ev.key == "a.csv":  # b.csv lands while a.csv, the round's only event, is processed
            source.add("b.csv", b"id\n2\n")
            _until(lambda: runtime.ledger.object_events("mem", "b.csv"), 5.0)
        original(ev)

    monkeypatch.setattr(engine, "_process_one", process)
    worker, stop = _serving(engine)
    try:
        source.add("a.csv", b"id\n1\n")
        assert _until(lambda: len(runtime.ledger.events(states=["committed"])) == 2, 30.0)
    finally:
        stop.set()
        worker.join(30)
    snapshots = {ev.key: ev.snapshot_id for ev in runtime.ledger.events(states=["committed"])}
    assert snapshots["a.csv"] != snapshots["b.csv"], "a.csv waited for b.csv, which landed after its round leased"

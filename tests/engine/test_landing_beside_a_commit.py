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
        # landed, and (the commit running beside the loop) perhaps leased already
        assert [ev.state for ev in landed] in (["queued"], ["running"]), "b.csv waited for the commit in progress to be landed"
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


def _buffered(engine: Engine, key: str) -> bool:
    return any(ev.key == key for buf in list(engine.buffers.values()) for ev, _ in list(buf.items))


def test_the_loop_leases_and_processes_the_next_event_while_a_commit_runs(
    built: tuple[Runtime, MemorySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit runs beside the loop (`serve`): the next event is leased, read and buffered
    meanwhile, and commits once the commit in progress has ended."""
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
        source.add("b.csv", b"id\n2\n")
        beside = _until(lambda: _buffered(engine, "b.csv"), 5.0)
        assert not release.is_set()
        assert beside, "b.csv was not leased and processed while a.csv's commit ran"
        assert [ev.state for ev in runtime.ledger.object_events("mem", "b.csv")] == ["running"]
        assert [ev.state for ev in runtime.ledger.object_events("mem", "a.csv")] == ["running"]
    finally:
        release.set()
        done = _until(lambda: len(runtime.ledger.events(states=["committed"])) == 2, 30.0)
        stop.set()
        worker.join(30)
    assert done and not worker.is_alive()
    committed = {ev.key: ev.committed_at or 0.0 for ev in runtime.ledger.events(states=["committed"])}
    assert committed["a.csv"] <= committed["b.csv"]
    rows = runtime.catalog.load_table("sales.orders").scan().to_arrow()
    assert sorted(rows.column("id").to_pylist()) == [1, 2]


UPSERT = {
    "read": {"format": "csv", "schema": {"id": "long", "v": "long"}},
    "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]},
    "retry": {"backoff": "50ms", "max_backoff": "50ms"},
    "batch": {"max_rows": 1},  # each event its own commit: y.csv alone could go before x.csv
}


def test_a_newer_event_read_beside_a_failing_commit_waits_for_the_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """x.csv's commit (on its thread) fails and will retry while y.csv, newer, of the same upsert
    pipeline, is being read in the loop: y.csv must not commit before x.csv (the newest landed
    wins), so it is handed back when it reaches the buffer, and both commit in landing order."""
    from icefloe.lake.writer import TableWriter

    runtime, source = fake_runtime(tmp_path, {"orders": UPSERT})
    engine = Engine(runtime)
    y_reading, failed = threading.Event(), threading.Event()
    real_commit = TableWriter.commit
    real_process = engine._process_one
    calls: list[list[str]] = []

    def commit(self: TableWriter, staged: list[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append([s.source_ref for s in staged])
        if len(calls) == 1:  # x.csv alone: fails once y.csv is being read beside it
            assert y_reading.wait(10), "y.csv was not leased while x.csv's commit ran"
            raise RuntimeError("the catalog hiccuped")
        return real_commit(self, staged, *args, **kwargs)

    def process(ev: Any) -> None:
        if ev.key == "y.csv" and not y_reading.is_set():
            y_reading.set()
            # y.csv reaches the buffer only after x.csv has failed and its hold is in place
            if _until(lambda: [e.state for e in runtime.ledger.object_events("mem", "x.csv")] == ["retrying"], 10.0):
                failed.set()
                time.sleep(0.2)
        real_process(ev)

    monkeypatch.setattr(TableWriter, "commit", commit)
    monkeypatch.setattr(engine, "_process_one", process)
    worker, stop = _serving(engine)
    try:
        try:
            source.add("x.csv", b"id,v\n1,1\n")
            assert _until(lambda: calls, 10.0), "x.csv never reached its commit"
            source.add("y.csv", b"id,v\n1,2\n")
            assert _until(lambda: len(runtime.ledger.events(states=["committed"])) == 2, 30.0), calls
        finally:
            stop.set()
            worker.join(30)
        assert failed.is_set(), "y.csv was not read while x.csv's commit failed beside it"
        committed = {ev.key: ev.committed_at or 0.0 for ev in runtime.ledger.events(states=["committed"])}
        assert committed["x.csv"] <= committed["y.csv"], calls
        rows = runtime.catalog.load_table("sales.orders").scan().to_arrow().to_pylist()
        assert [(r["id"], r["v"]) for r in rows] == [(1, 2)], f"y.csv committed before x.csv: {calls}"
    finally:
        runtime.close()

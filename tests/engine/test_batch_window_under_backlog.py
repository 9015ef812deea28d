"""Under a backlog, a table whose commits are slow (a catalog on an object store) keeps its batch
open for a few times its last commit instead of committing every max_wait: 2,000 small objects
on S3 made 118 commits of ~0.9 s each at max_wait 0.5 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe.engine import Engine
from icefloe.engine.committing import MAX_STRETCH
from icefloe.runtime import Runtime
from tests.engine.fakes import FakeClock, MemorySource, fake_runtime

ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long", "amount": "double"}},
    "write": {"table": "sales.orders"},
    "batch": {"max_wait": "100ms"},
}
COMMIT = 0.3  # seconds each commit takes here


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[Runtime, MemorySource]]:
    runtime, source = fake_runtime(tmp_path, {"orders": ORDERS})
    yield runtime, source
    runtime.close()


def test_a_slow_commit_stretches_the_batch_window_while_more_is_pending(
    built: tuple[Runtime, MemorySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, source = built
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    engine = Engine(runtime)
    original = engine.committer._commit

    def slow(table: str, items: list[Any]) -> None:
        time.sleep(COMMIT)
        original(table, items)

    monkeypatch.setattr(engine.committer, "_commit", slow)
    for name in ("a", "b", "c"):
        source.add(f"{name}.csv", f"id,amount\n{ord(name)},1.0\n".encode())
    engine.reconcile()
    runtime.ledger.lease("host-b:1:bbbbbb", limit=1, ttl=600)  # held elsewhere: more is coming
    assert engine.step()
    assert engine._flush(force=True)  # the first commit: its time is measured
    for name in ("d", "e"):
        source.add(f"{name}.csv", f"id,amount\n{ord(name)},1.0\n".encode())
    engine.reconcile()
    assert engine.step()
    assert len(engine.buffers["sales.orders"].items) == 2
    clock.advance(0.2)  # past max_wait, but short of COMMIT_STRETCH x the last commit (> 0.3 s)
    assert not engine._flush(force=False)
    clock.advance(MAX_STRETCH)  # the stretch has a cap
    assert engine._flush(force=False)
    assert len(runtime.ledger.events(states=["committed"])) == 4


def test_with_nothing_more_pending_the_batch_commits_at_max_wait_or_sooner(built: tuple[Runtime, MemorySource]) -> None:
    runtime, source = built
    engine = Engine(runtime)
    engine.committer._commit_seconds["sales.orders"] = 5.0  # a slow catalog, but no backlog
    source.add("a.csv", b"id,amount\n1,1.0\n")
    engine.reconcile()
    assert engine.step()
    assert len(runtime.ledger.events(states=["committed"])) == 1

"""Two connections to one ledger leasing at the same moment (SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from icefloe.ledger import Ledger, open_ledger
from tests.ledger.test_ledger_contract import _land


def _at_once(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, all released by one barrier; their results in order."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = workers[i]()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_two_connections_leasing_at_once_never_get_the_same_event(shared_uri: str, tmp_path: Path) -> None:
    first, second = open_ledger(shared_uri, tmp_path), open_ledger(shared_uri, tmp_path)
    try:
        for i in range(60):
            _land(first, key=f"{i}.csv")

        def drain(led: Ledger, owner: str) -> list[str]:
            got: list[str] = []
            while batch := led.lease(owner, limit=3, ttl=60):
                got += [e.id for e in batch]
            return got

        a, b = _at_once([lambda: drain(first, "a"), lambda: drain(second, "b")])
        assert not set(a) & set(b)
        assert len(a) + len(b) == 60
        assert {e.lease_owner for e in first.events()} <= {"a", "b"}
        assert all(e.epoch == 1 for e in first.events())
    finally:
        first.close()
        second.close()


def test_an_ordered_pipeline_is_never_leased_to_two_workers_at_once(shared_uri: str, tmp_path: Path) -> None:
    first, second = open_ledger(shared_uri, tmp_path), open_ledger(shared_uri, tmp_path)
    try:
        for round_ in range(15):
            _land(first, key=f"old{round_}.csv", pipelines=["changes"])
            _land(first, key=f"new{round_}.csv", pipelines=["changes"])
            got = _at_once([
                lambda: first.lease("a", limit=1, ttl=60, ordered=["changes"]),
                lambda: second.lease("b", limit=1, ttl=60, ordered=["changes"]),
            ])  # fmt: skip
            taken = [ev for batch in got for ev in batch]
            # the newer event waits while another worker holds the older one
            assert [e.key for e in taken] == [f"old{round_}.csv"], taken
            (ev,) = taken
            owner = first if ev.lease_owner == "a" else second
            owner.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={}, epochs={ev.id: ev.epoch})
            (newer,) = first.lease("a", limit=1, ttl=60, ordered=["changes"])
            first.mark_committed([newer.id], table="t.x", snapshot_id=2, stats={}, epochs={newer.id: newer.epoch})
    finally:
        first.close()
        second.close()


def test_landing_from_two_connections_numbers_every_event_once(shared_uri: str, tmp_path: Path) -> None:
    first, second = open_ledger(shared_uri, tmp_path), open_ledger(shared_uri, tmp_path)
    try:
        _at_once([
            lambda: [_land(first, key=f"a{i}.csv") for i in range(30)],
            lambda: [_land(second, key=f"b{i}.csv") for i in range(30)],
        ])  # fmt: skip
        seqs = [e.seq for e in first.events()]
        assert len(seqs) == 60 and len(set(seqs)) == 60 and seqs == sorted(seqs)
    finally:
        first.close()
        second.close()


def test_one_ledger_shared_by_threads_keeps_every_call_whole(ledger: Ledger) -> None:
    """A worker's loop and its keep-alive thread share one ledger (one connection, one lock)."""

    def work(n: int) -> list[str]:
        for i in range(20):
            _land(ledger, key=f"t{n}-{i}.csv")
        got: list[str] = []
        while batch := ledger.lease(f"thread-{n}", limit=2, ttl=60):
            ledger.renew([e.id for e in batch], f"thread-{n}", 60, epochs={e.id: e.epoch for e in batch})
            ledger.mark_committed([e.id for e in batch], table="t.x", snapshot_id=n, stats={}, epochs={e.id: e.epoch for e in batch})
            got += [e.id for e in batch]
        return got

    results = _at_once([lambda n=n: work(n) for n in range(4)])
    taken = [i for got in results for i in got]
    assert len(taken) == len(set(taken)) == 80
    assert {e.state for e in ledger.events()} == {"committed"}

"""The counters every transition keeps (`Ledger.tallies`) equal what a GROUP BY over the events
counts, after any sequence of transitions, on every backend; an existing ledger is counted when
it is upgraded; two connections changing the same counters at once lose nothing."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from icefloe.errors import IcefloeError, LeaseLostError
from icefloe.ledger import Ledger, open_ledger
from tests.ledger.test_ledger_concurrency import _at_once

PIPELINES = (["orders"], ["clicks"], ["orders", "clicks"], [])


def _expected(ledger: Ledger, forgotten: dict[str, float] | None = None) -> tuple[dict[Any, Any], dict[str, int], dict[str, float]]:
    """The counters as the events themselves say (a GROUP BY, and the events read one by one).
    `forgotten`: per source, the last landing of an unrouted record `requeue_unrouted` deleted
    (it landed then: the source's last landing stays)."""
    groups = {(g.source, g.pipeline, g.state): (g.events, g.rows_quarantined, g.last_committed_at) for g in ledger.counts()}
    keys: dict[str, set[str]] = {}
    last: dict[str, float] = dict(forgotten or {})
    for ev in ledger.events():
        keys.setdefault(ev.source, set()).add(ev.key)
        last[ev.source] = max(last.get(ev.source, 0.0), ev.landed_at)
    return groups, {s: len(k) for s, k in keys.items()}, last


def _counted(ledger: Ledger) -> tuple[dict[Any, Any], dict[str, int], dict[str, float]]:
    got = ledger.tallies()
    groups = {(c.source, c.pipeline, c.state): (c.events, c.rows_quarantined, c.last_committed_at) for c in got.states}
    return groups, got.objects, got.last_landed


def _assert_exact(ledger: Ledger, forgotten: dict[str, float]) -> None:
    assert _counted(ledger) == _expected(ledger, forgotten)
    for source, objects in _expected(ledger)[1].items():
        assert ledger.object_count(source) == objects
    states = ["landed", "queued", "running", "retrying"]
    assert ledger.pending_count() == len(ledger.events(states=states))
    assert ledger.pending_count(["orders"]) == len(ledger.events(states=states, pipeline="orders"))
    assert ledger.search_count(states=["dead"]) == len(ledger.events(states=["dead"]))


def _step(ledger: Ledger, rng: random.Random, held: dict[str, tuple[str, int]], forgotten: dict[str, float]) -> None:
    """One random transition (or an attempt the ledger refuses, which must change nothing)."""
    action = rng.choice(["land", "land", "lease", "lease", "commit", "fail", "fail", "dead", "release", "expire",
                         "replay", "discard", "supersede", "requeue"])  # fmt: skip
    if action == "land":
        source = rng.choice(["landing", "inbox"])
        key = f"{rng.randrange(8)}.csv"
        ledger.land(source=source, key=key, uri=f"file:///x/{key}", content_hash=f"h{rng.randrange(3)}", size=1,
                    pipelines=rng.choice(PIPELINES))  # fmt: skip
    elif action in ("lease", "expire"):
        # a lease of ttl -1 is expired at once: the next lease takes the event over (running -> running)
        owner = rng.choice(["w1", "w2"])
        for ev in ledger.lease(owner, limit=rng.randrange(1, 4), ttl=-1 if action == "expire" else 60):
            held[ev.id] = (owner, ev.epoch)
    elif held:
        id = rng.choice(sorted(held))
        owner, epoch = held.pop(id)
        try:
            if action == "commit":
                stats = {id: {"rows_quarantined": rng.randrange(3)}} if rng.random() < 0.7 else {}
                ledger.mark_committed([id], table="t.x", snapshot_id=1, stats=stats, epochs={id: epoch})
            elif action in ("fail", "dead"):
                ledger.mark_failed(id, error="boom", kind="DataError", transient=action == "fail", backoff=0,
                                   max_backoff=0, epoch=epoch)  # fmt: skip
            elif action == "release":
                ledger.release([id], owner, epochs={id: epoch})
            elif action == "supersede":
                ledger.supersede(id, "replaced", epoch=epoch)
        except LeaseLostError:
            pass  # another lease took it since: refused, nothing changed
    if action in ("replay", "discard"):
        dead = [e.id for e in ledger.events(states=["dead"])]
        chosen = None if not dead or rng.random() < 0.3 else rng.sample(dead, rng.randrange(1, len(dead) + 1))
        (ledger.replay if action == "replay" else ledger.discard)(chosen)
    elif action == "requeue":
        stray = [e for e in ledger.events(states=["unrouted"])]
        if stray:
            # as the engine's reroute does: forget the unrouted records, land them for a pipeline
            ev = rng.choice(stray)
            forgotten[ev.source] = max(forgotten.get(ev.source, 0.0), ev.landed_at)
            ledger.requeue_unrouted([(ev.source, ev.key)])
            if rng.random() < 0.8:
                ledger.land(source=ev.source, key=ev.key, uri=ev.uri, content_hash=ev.content_hash, size=1,
                            pipelines=["orders"])  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_equal_a_group_by_after_random_transitions(ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    held: dict[str, tuple[str, int]] = {}
    seen: set[str] = set()
    forgotten: dict[str, float] = {}
    for i in range(150):
        _step(ledger, rng, held, forgotten)
        seen |= {state for _, _, state in _counted(ledger)[0]}
        if i % 10 == 0:
            _assert_exact(ledger, forgotten)
    _assert_exact(ledger, forgotten)
    # the sequence went through every state (else it tested less than it says)
    assert seen == {"queued", "running", "retrying", "committed", "dead", "discarded", "unrouted"}


def test_a_refused_transition_leaves_the_counters_alone(ledger: Ledger) -> None:
    (ev,) = ledger.land(source="s", key="a", uri="file:///a", content_hash="h", size=1, pipelines=["orders"])
    before = _counted(ledger)
    with pytest.raises(IcefloeError):
        ledger.replay([ev.id])  # queued, not dead: the whole call is refused
    with pytest.raises(IcefloeError):
        ledger.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={}, epochs={ev.id: 7})  # not its lease
    assert _counted(ledger) == before == _expected(ledger)


def test_upgrading_an_existing_ledger_counts_its_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = open_ledger(f"sqlite:///{path}", tmp_path)
    rng = random.Random(7)
    held: dict[str, tuple[str, int]] = {}
    forgotten: dict[str, float] = {}
    for _ in range(120):
        _step(ledger, rng, held, forgotten)
    expected = _expected(ledger)
    ledger.close()
    # the ledger as migration 6 left it: no counters yet
    con = sqlite3.connect(path)
    con.executescript("DROP TABLE event_counts; DROP TABLE source_counts; DROP INDEX events_dead;"
                      " DELETE FROM schema_version WHERE version = 7;")  # fmt: skip
    con.close()
    again = open_ledger(f"sqlite:///{path}", tmp_path)
    try:
        assert _counted(again) == expected
        assert again.schema_status().pending == []
    finally:
        again.close()


@pytest.mark.service
def test_upgrading_a_postgresql_ledger_counts_its_events(pg_uri: str, tmp_path: Path) -> None:
    import psycopg

    ledger = open_ledger(pg_uri, tmp_path)
    rng = random.Random(11)
    held: dict[str, tuple[str, int]] = {}
    forgotten: dict[str, float] = {}
    for _ in range(120):
        _step(ledger, rng, held, forgotten)
    expected = _expected(ledger)
    ledger.close()
    with psycopg.connect(pg_uri, autocommit=True) as con:
        con.execute("DROP TABLE event_counts; DROP TABLE source_counts; DELETE FROM schema_version WHERE version = 7")
    again = open_ledger(pg_uri, tmp_path)
    try:
        assert _counted(again) == expected
    finally:
        again.close()


def test_two_connections_moving_the_same_counters_at_once_lose_no_count(shared_uri: str, tmp_path: Path) -> None:
    # each worker leases, fails (running -> retrying), leases again (retrying -> running) and
    # commits: the two lock the same counter rows in opposite transitions, which a counter
    # updated per transition (a row trigger) deadlocks on
    first, second = open_ledger(shared_uri, tmp_path), open_ledger(shared_uri, tmp_path)
    try:
        for i in range(80):
            first.land(source="s", key=f"{i}.csv", uri=f"file:///{i}", content_hash="h", size=1, pipelines=["orders"])

        def work(led: Ledger, owner: str) -> int:
            done = 0
            while batch := led.lease(owner, limit=2, ttl=60):
                for ev in batch:
                    if ev.attempts == 1:
                        led.mark_failed(ev.id, error="x", kind="Transient", transient=True, backoff=0, max_backoff=0,
                                        epoch=ev.epoch)  # fmt: skip
                    else:
                        led.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={}, epochs={ev.id: ev.epoch})
                        done += 1
            return done

        a, b = _at_once([lambda: work(first, "a"), lambda: work(second, "b")])
        assert a + b == 80
        assert _counted(first) == _expected(first)
        assert _counted(first)[0] == {("s", "orders", "committed"): (80, 0, _expected(first)[0][("s", "orders", "committed")][2])}
    finally:
        first.close()
        second.close()

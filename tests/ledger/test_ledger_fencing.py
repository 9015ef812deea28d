"""Fenced leases: every lease bumps the epoch, and a worker whose lease moved on cannot write."""

from __future__ import annotations

import time

import pytest

from icefloe.errors import LeaseLostError
from icefloe.ledger import Event, Ledger
from tests.ledger.test_ledger_contract import _land


def _stolen(ledger: Ledger) -> tuple[Event, Event]:
    """Worker A leases, its lease runs out, worker B leases the same event."""
    _land(ledger)
    (a,) = ledger.lease("worker-a", limit=1, ttl=0.05)
    time.sleep(0.1)
    (b,) = ledger.lease("worker-b", limit=1, ttl=30)
    assert b.id == a.id
    return a, b


def test_every_lease_bumps_the_epoch(ledger: Ledger) -> None:
    (landed,) = _land(ledger)
    assert landed.epoch == 0
    (first,) = ledger.lease("w", limit=1, ttl=30)
    ledger.release([first.id], "w", epochs={first.id: first.epoch})
    (second,) = ledger.lease("w", limit=1, ttl=30)
    assert (first.epoch, second.epoch) == (1, 2)
    stored = ledger.get(second.id)
    assert stored is not None and stored.epoch == 2


def test_a_stale_worker_cannot_commit_fail_or_release_and_the_new_owner_keeps_its_state(ledger: Ledger) -> None:
    a, b = _stolen(ledger)
    assert b.epoch == a.epoch + 1
    with pytest.raises(LeaseLostError) as lost:
        ledger.mark_committed([a.id], table="t.x", snapshot_id=1, stats={}, epochs={a.id: a.epoch})
    assert lost.value.ids == [a.id]
    with pytest.raises(LeaseLostError):
        ledger.mark_failed(a.id, error="late", kind="OSError", transient=True, backoff=0, max_backoff=0, epoch=a.epoch)
    with pytest.raises(LeaseLostError):
        ledger.release([a.id], "worker-a", epochs={a.id: a.epoch})
    with pytest.raises(LeaseLostError):
        ledger.supersede(a.id, "late", epoch=a.epoch)
    with pytest.raises(LeaseLostError):
        ledger.renew([a.id], "worker-a", 30, epochs={a.id: a.epoch})
    held = ledger.get(a.id)
    assert held is not None
    assert (held.state, held.lease_owner, held.epoch, held.error) == ("running", "worker-b", b.epoch, None)
    # B's own writes go through
    ledger.mark_committed([b.id], table="t.x", snapshot_id=7, stats={}, epochs={b.id: b.epoch})
    done = ledger.get(b.id)
    assert done is not None and (done.state, done.snapshot_id) == ("committed", 7)


def test_a_stale_commit_after_the_new_owner_committed_does_not_overwrite_it(ledger: Ledger) -> None:
    a, b = _stolen(ledger)
    ledger.mark_committed([b.id], table="t.x", snapshot_id=7, stats={b.id: {"rows_out": 3}}, epochs={b.id: b.epoch})
    with pytest.raises(LeaseLostError):
        ledger.mark_committed([a.id], table="t.x", snapshot_id=99, stats={a.id: {"rows_out": 1}}, epochs={a.id: a.epoch})
    done = ledger.get(a.id)
    assert done is not None and (done.state, done.snapshot_id, done.rows_out) == ("committed", 7, 3)
    assert [s.step for s in ledger.steps(a.id)].count("committed") == 1


def test_writes_to_events_still_held_apply_and_only_the_lost_are_refused(ledger: Ledger) -> None:
    _land(ledger, key="kept.csv")
    _land(ledger, key="lost.csv")
    kept, stale = ledger.lease("worker-a", limit=2, ttl=30)
    ledger.release_dead_owners(lambda owner: False)  # A looks dead: its leases expire at once
    # B takes one of them back
    (taken,) = ledger.lease("worker-b", limit=1, ttl=30, pipelines=["orders"])
    mine = kept if taken.id == stale.id else stale
    with pytest.raises(LeaseLostError) as lost:
        ledger.mark_committed([kept.id, stale.id], table="t.x", snapshot_id=1, stats={}, epochs={kept.id: kept.epoch, stale.id: stale.epoch})
    assert lost.value.ids == [taken.id]
    committed = ledger.get(mine.id)
    assert committed is not None and committed.state == "committed"


def test_an_expired_lease_nobody_took_is_still_the_holders(ledger: Ledger) -> None:
    _land(ledger)
    (a,) = ledger.lease("worker-a", limit=1, ttl=0.05)
    time.sleep(0.1)
    ledger.mark_committed([a.id], table="t.x", snapshot_id=1, stats={}, epochs={a.id: a.epoch})
    done = ledger.get(a.id)
    assert done is not None and done.state == "committed"


def test_unfenced_admin_writes_still_apply(ledger: Ledger) -> None:
    a, b = _stolen(ledger)
    # upkeep settling a snapshot it found in the table history names no epoch
    ledger.mark_committed([a.id], table="t.x", snapshot_id=5, stats={})
    done = ledger.get(a.id)
    assert done is not None and (done.state, done.snapshot_id) == ("committed", 5)


def test_a_lease_is_timed_by_the_ledger_clock_not_the_callers(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose clock runs an hour ahead must not see live leases of others as expired."""
    _land(ledger)
    (held,) = ledger.lease("worker-a", limit=1, ttl=30)
    if type(ledger).__name__ == "PostgresLedger":
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        assert ledger.lease("worker-b", limit=1, ttl=30) == []
    assert held.lease_expires_at is not None and held.started_at is not None
    assert held.lease_expires_at == pytest.approx(held.started_at + 30)

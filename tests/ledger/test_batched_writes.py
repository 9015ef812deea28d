"""The ledger calls a worker batches to make fewer transactions (each one a WAL flush on
PostgreSQL): `record_steps`, `with_committed_version`, and `transaction()` around a lease, a
fenced renewal or the committed marks of one commit. Every backend."""

from __future__ import annotations

import time

import pytest

from icefloe.errors import LeaseLostError, LedgerUnavailableError
from icefloe.ledger import Ledger, Step
from tests.helpers import CountedCommits
from tests.ledger.test_ledger_contract import _land


def test_record_steps_writes_every_record_in_one_transaction(ledger: Ledger) -> None:
    a = _land(ledger, "a.csv")[0]
    b = _land(ledger, "b.csv")[0]
    commits = CountedCommits(ledger)
    ledger.record_steps([
        Step(a.id, "read", 10.0, 11.0, {"busy_ms": 1.5}),
        Step(b.id, "read", 10.5, 12.0, {}),
        Step(a.id, "staged", 12.0, 12.0, {"rows_in": 3, "rows_out": 2}),
    ])  # fmt: skip
    assert commits.count == 1
    steps = [(s.step, s.started_at, s.ended_at, s.detail) for s in ledger.steps(a.id) if s.step != "landed"]
    assert steps == [("read", 10.0, 11.0, {"busy_ms": 1.5}), ("staged", 12.0, 12.0, {"rows_in": 3, "rows_out": 2})]
    assert [s.step for s in ledger.steps(b.id) if s.step != "landed"] == ["read"]
    ledger.record_steps([])
    assert commits.count == 1  # nothing to write: no transaction


def test_with_committed_version_answers_has_committed_version_for_a_batch(ledger: Ledger) -> None:
    (old,) = _land(ledger, "a.csv", "v1")
    (leased,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_committed([leased.id], table="t.x", snapshot_id=1, stats={}, epochs={leased.id: leased.epoch})
    (new,) = _land(ledger, "a.csv", "v2")  # a new version of a committed object
    (other,) = _land(ledger, "b.csv", "v1")  # same bytes, another object: not a version of a.csv
    (elsewhere,) = _land(ledger, "a.csv", "v3", pipelines=["audit"])  # same object, another pipeline
    batch = [new, other, elsewhere, old]
    expected = {
        ev.id for ev in batch
        if ev.pipeline and ledger.has_committed_version(ev.source, ev.key, ev.pipeline, other_than=ev.id)
    }  # fmt: skip
    assert expected == {new.id}
    assert ledger.with_committed_version(batch) == expected
    assert ledger.with_committed_version([]) == set()


def test_a_lease_and_step_records_commit_together(ledger: Ledger) -> None:
    a = _land(ledger, "a.csv")[0]
    _land(ledger, "b.csv")
    commits = CountedCommits(ledger)
    with ledger.transaction():
        ledger.record_steps([Step(a.id, "staged", 1.0, 1.0, {"rows_out": 1})])
        leased = ledger.lease("w", limit=5, ttl=30)
    assert commits.count == 1
    assert sorted(e.key for e in leased) == ["a.csv", "b.csv"]
    assert all(e.state == "running" and e.epoch == 1 for e in ledger.events())
    assert "staged" in [s.step for s in ledger.steps(a.id)]
    assert {t.state: t.events for t in ledger.tallies().states} == {"running": 2}


def test_a_rolled_back_transaction_leases_nothing_and_records_nothing(ledger: Ledger) -> None:
    a = _land(ledger, "a.csv")[0]
    with pytest.raises(LedgerUnavailableError), ledger.transaction():
        ledger.record_steps([Step(a.id, "staged", 1.0, 1.0, {})])
        assert len(ledger.lease("w", limit=5, ttl=30)) == 1
        raise LedgerUnavailableError("gone before the commit")
    (ev,) = ledger.events()
    assert (ev.state, ev.epoch, ev.attempts) == ("queued", 0, 0)
    assert [s.step for s in ledger.steps(a.id)] == ["landed"]
    assert {t.state: t.events for t in ledger.tallies().states} == {"queued": 1}


def test_a_lost_lease_caught_inside_a_transaction_keeps_the_held_events_marks(ledger: Ledger) -> None:
    """The committer's committed marks: one transaction, a LeaseLostError for the events another
    worker took, and the others' marks (and the step records) committed all the same."""
    _land(ledger, "a.csv")
    _land(ledger, "b.csv")
    first = ledger.lease("worker-a", limit=1, ttl=0.05)[0]
    kept = ledger.lease("worker-a", limit=1, ttl=30)[0]
    time.sleep(0.1)
    (taken,) = ledger.lease("worker-b", limit=1, ttl=30)
    assert taken.id == first.id
    commits = CountedCommits(ledger)
    lost: list[str] = []
    with ledger.transaction():
        now = time.time()
        ledger.record_steps([Step(kept.id, "commit", now, now, {"table": "t.x"})])
        try:
            ledger.mark_committed(
                [first.id, kept.id], table="t.x", snapshot_id=9, stats={}, epochs={first.id: first.epoch, kept.id: kept.epoch}
            )
        except LeaseLostError as refused:
            lost = refused.ids
    assert commits.count == 1
    assert lost == [first.id]
    done, held = ledger.get(kept.id), ledger.get(first.id)
    assert done is not None and (done.state, done.snapshot_id) == ("committed", 9)
    assert held is not None and (held.state, held.lease_owner) == ("running", "worker-b")
    assert [s.step for s in ledger.steps(kept.id)][-2:] == ["commit", "committed"]
    assert "commit" not in [s.step for s in ledger.steps(first.id)]
    assert {t.state: t.events for t in ledger.tallies().states} == {"committed": 1, "running": 1}


def test_get_many_answers_get_for_many_ids_in_one_lookup(ledger: Ledger) -> None:
    landed = [_land(ledger, f"k{n:04d}.csv")[0] for n in range(520)]  # more than one chunk of 500
    (running,) = ledger.lease("w", limit=1, ttl=30)
    ids = [ev.id for ev in landed] + ["no-such-event", landed[0].id]
    found = ledger.get_many(ids)
    assert set(found) == {ev.id for ev in landed}
    for ev in landed[:3] + landed[-3:]:
        assert found[ev.id] == ledger.get(ev.id)
    assert found[running.id].state == "running" and found[running.id].epoch == 1
    assert ledger.get_many([]) == {}

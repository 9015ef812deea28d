"""What `run` reports it did, counted as it goes: a long run does not keep every event it settled."""

from __future__ import annotations

from pathlib import Path

from icefloe.engine.summary import Tally
from icefloe.ledger import open_ledger


def test_the_last_state_of_each_event_is_what_counts(tmp_path: Path) -> None:
    ledger = open_ledger("sqlite:///:memory:", tmp_path)
    tally = Tally()
    tally.seen("a", "retrying")
    tally.seen("a", "committed", rows=3)
    tally.seen("b", "dead")
    tally.seen("b", "committed", rows=2)  # replayed while the run went on
    tally.seen("c", "dead")
    tally.seen("d", "discarded")
    got = tally.summary(ledger)
    assert (got.committed, got.dead, got.discarded, got.retrying, got.rows) == (2, 1, 1, 0, 5)


def test_settled_events_are_counted_not_remembered(tmp_path: Path) -> None:
    ledger = open_ledger("sqlite:///:memory:", tmp_path)
    tally = Tally()
    for i in range(1000):
        tally.seen(f"e{i}", "committed", rows=1)
        tally.seen(f"x{i}", "discarded")
    tally.seen("late", "retrying")
    assert tally.open == {"late": "retrying"}
    got = tally.summary(ledger)
    # "late" is no event of this ledger: finished elsewhere (or gone), so not this run's retry
    assert (got.committed, got.discarded, got.retrying, got.rows) == (1000, 1000, 0, 1000)


def test_rows_not_told_are_read_from_the_ledger_once(tmp_path: Path) -> None:
    ledger = open_ledger("sqlite:///:memory:", tmp_path)
    (ev,) = ledger.land(source="s", key="k", uri="u", content_hash="h", size=1, pipelines=["p"])
    ledger.lease("w", limit=1, ttl=30)
    ledger.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={ev.id: {"rows_out": 7}})
    tally = Tally()
    tally.seen(ev.id, "committed")
    assert tally.summary(ledger).rows == 7
    assert tally.summary(ledger).rows == 7  # read once, not added again

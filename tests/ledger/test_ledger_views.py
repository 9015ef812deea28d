"""Aggregates and keyset pages: what status, dlq and icefloe.events read without loading every event."""

from __future__ import annotations

from icefloe.ledger import GroupCount, Ledger
from tests.ledger.test_ledger_contract import _land


def _commit(ledger: Ledger, quarantined: int) -> None:
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    stats = {ev.id: {"rows_in": 5, "rows_out": 5 - quarantined, "rows_quarantined": quarantined}}
    ledger.mark_committed([ev.id], table="t.orders", snapshot_id=1, stats=stats, epochs={ev.id: ev.epoch})


def _fail(ledger: Ledger, error: str) -> None:
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_failed(ev.id, error=error, kind="DataError", transient=False, backoff=0, max_backoff=0, epoch=ev.epoch)


def test_counts_group_events_by_source_pipeline_and_state(ledger: Ledger) -> None:
    _land(ledger, key="a.csv")
    _commit(ledger, quarantined=2)
    _land(ledger, key="b.csv")
    _commit(ledger, quarantined=1)
    _land(ledger, key="c.csv")
    _land(ledger, key="stray.txt", pipelines=[])
    found = ledger.counts()
    assert [(g.source, g.pipeline, g.state, g.events, g.rows_quarantined) for g in found] == [
        ("landing", None, "unrouted", 1, 0),
        ("landing", "orders", "committed", 2, 3),
        ("landing", "orders", "queued", 1, 0),
    ]
    committed = found[1]
    assert isinstance(committed, GroupCount)
    assert committed.oldest_landed_at is not None and committed.newest_landed_at is not None
    assert committed.oldest_landed_at < committed.newest_landed_at
    assert committed.last_committed_at is not None and committed.last_committed_at >= committed.newest_landed_at
    assert found[2].last_committed_at is None


def test_object_count_counts_each_object_once_across_versions_and_pipelines(ledger: Ledger) -> None:
    _land(ledger, key="a.csv", content="v1", pipelines=["orders", "audit"])
    _land(ledger, key="a.csv", content="v2", pipelines=["orders", "audit"])
    _land(ledger, key="b.csv")
    ledger.land(source="other", key="a.csv", uri="file:///o/a.csv", content_hash="x", size=1, pipelines=["orders"])
    assert ledger.object_count("landing") == 2
    assert ledger.object_count("other") == 1
    assert ledger.object_count("nothing") == 0


def test_last_error_is_the_newest_dead_events(ledger: Ledger) -> None:
    assert ledger.last_error("orders") is None
    _land(ledger, key="a.csv")
    _fail(ledger, "first")
    _land(ledger, key="b.csv")
    _fail(ledger, "second")
    assert ledger.last_error("orders") == "second"
    assert ledger.last_error("audit") is None


def test_pages_walk_every_event_once_in_landing_order(ledger: Ledger) -> None:
    for i in range(7):
        _land(ledger, key=f"{i}.csv", pipelines=["orders", "audit"] if i % 2 else ["orders"])
    seen, after = [], None
    while page := ledger.page(pipeline="orders", after=after, limit=3):
        assert len(page) <= 3
        seen += page
        after = page[-1].seq
    assert [e.key for e in seen] == [f"{i}.csv" for i in range(7)]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert len(ledger.page(limit=100)) == 10
    assert [e.key for e in ledger.page(source="landing", pipeline="audit", limit=100)] == ["1.csv", "3.csv", "5.csv"]


def test_pages_filter_by_state_and_a_landing_after_the_cursor_is_on_the_next_page(ledger: Ledger) -> None:
    _land(ledger, key="a.csv")
    _fail(ledger, "bad")
    _land(ledger, key="b.csv")
    (first,) = ledger.page(states=["dead"])
    assert first.key == "a.csv"
    assert ledger.page(states=["dead"], after=first.seq) == []
    _land(ledger, key="c.csv")
    _fail(ledger, "bad too")  # leases b.csv, the oldest queued
    assert [e.key for e in ledger.page(states=["dead"], after=first.seq)] == ["b.csv"]
    assert ledger.page(states=[]) == []


def test_find_by_name_matches_the_whole_key_or_its_last_path_parts(ledger: Ledger) -> None:
    _land(ledger, key="2024/orders.csv")
    _land(ledger, key="orders.csv")
    _land(ledger, key="old_orders.csv")
    _land(ledger, key="Orders.csv")
    _land(ledger, key="x%orders.csv")
    found = ledger.find_by_name("orders.csv")
    assert sorted(e.key for e in found) == ["2024/orders.csv", "orders.csv"]
    assert [e.key for e in ledger.find_by_name("2024/orders.csv")] == ["2024/orders.csv"]
    assert len(ledger.find_by_name("orders.csv", limit=1)) == 1
    assert ledger.find_by_name("%orders.csv") == []

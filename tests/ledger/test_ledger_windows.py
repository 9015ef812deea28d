"""The dashboard's reads: `search` (filters, a landing-time window, keyset pages newest first),
`search_count`, and `histogram` (events per pipeline per time bucket, counted by the database)."""

from __future__ import annotations

import pytest

from icefloe.ledger import Ledger
from tests.ledger.test_ledger_contract import _land
from tests.ledger.test_ledger_views import _commit


def test_search_pages_newest_first_and_counts_what_it_pages(ledger: Ledger) -> None:
    for i in range(7):
        _land(ledger, key=f"{i}.csv", pipelines=["orders" if i % 2 else "clicks"])
    seen, before = [], None
    while page := ledger.search(before=before, limit=3):
        seen += [e.key for e in page]
        before = page[-1].seq
    assert seen == [f"{i}.csv" for i in reversed(range(7))]
    assert [e.key for e in ledger.search(pipeline="orders", limit=10)] == ["5.csv", "3.csv", "1.csv"]
    assert ledger.search_count(pipeline="orders") == 3 and ledger.search_count() == 7
    assert ledger.search_count(states=["dead"]) == 0 and ledger.search(states=[], limit=5) == []
    assert ledger.search_count(source="other") == 0


def test_search_keeps_to_the_landing_window(ledger: Ledger) -> None:
    for i in range(4):
        _land(ledger, key=f"{i}.csv")
    times = sorted(e.landed_at for e in ledger.page(limit=10))
    assert len(set(times)) == 4  # landings are told apart by their times
    inside = ledger.search(since=times[1], until=times[3], limit=10)
    assert [e.key for e in inside] == ["2.csv", "1.csv"]
    assert ledger.search_count(since=times[1], until=times[3]) == 2
    assert ledger.search_count(since=times[3] + 1) == 0


@pytest.mark.parametrize("bucket", [1.0, 60.0])
def test_histogram_puts_each_event_in_its_bucket(ledger: Ledger, bucket: float) -> None:
    for i in range(3):
        _land(ledger, key=f"{i}.csv")
        _commit(ledger, quarantined=1)
    _land(ledger, key="x.csv", pipelines=["clicks"])
    events = ledger.page(limit=10)
    since = min(e.landed_at for e in events) - 2.5 * bucket
    found = ledger.histogram("landed_at", since=since, bucket=bucket)
    expected: dict[tuple[str | None, int], int] = {}
    for e in events:
        index = int((e.landed_at - since) // bucket)
        expected[(e.pipeline, index)] = expected.get((e.pipeline, index), 0) + 1
    assert {(b.pipeline, b.index): b.events for b in found} == expected
    committed = ledger.histogram("committed_at", since=since, bucket=bucket, states=["committed"])
    assert sum(b.events for b in committed) == 3 and sum(b.rows_out for b in committed) == 12
    assert {b.pipeline for b in committed} == {"orders"}
    # nothing from before `since` is counted
    assert ledger.histogram("landed_at", since=max(e.landed_at for e in events) + 1, bucket=bucket) == []


def test_histogram_takes_only_time_columns(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="landed_at"):
        ledger.histogram("state; drop table events", since=0, bucket=60)

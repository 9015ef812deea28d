"""The ledger's aggregates and paging, through the Ledger API only: every backend the contract
fixture lists runs these unchanged."""

from __future__ import annotations

import time

from icefloe.ledger import Event, Ledger


def _land(ledger: Ledger, key: str, content: str = "h", pipelines: list[str] | None = None, source: str = "landing") -> list[Event]:
    return ledger.land(
        source=source, key=key, uri=f"file:///x/{key}", content_hash=content, size=10,
        pipelines=["orders"] if pipelines is None else pipelines,
    )  # fmt: skip


def _kill(ledger: Ledger, ev: Event, error: str) -> None:
    assert ev.id in [e.id for e in ledger.lease("w", limit=100, ttl=30)]
    ledger.mark_failed(ev.id, error=error, kind="DataError", transient=False, backoff=0, max_backoff=0)
    # the rest of that lease goes back untried
    ledger.release([e.id for e in ledger.events(states=["running"])], "w")


def _commit(ledger: Ledger, ev: Event, quarantined: int) -> None:
    assert ev.id in [e.id for e in ledger.lease("w", limit=100, ttl=30)]
    ledger.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={ev.id: {"rows_quarantined": quarantined}})
    ledger.release([e.id for e in ledger.events(states=["running"])], "w")


def test_counts_groups_events_by_source_pipeline_and_state(ledger: Ledger) -> None:
    (a,) = _land(ledger, "a.csv")
    (b,) = _land(ledger, "b.csv")
    _land(ledger, "c.csv")
    _land(ledger, "d.csv", pipelines=["clicks"])
    _land(ledger, "stray.bin", pipelines=[])
    _land(ledger, "e.csv", source="inbox")
    _commit(ledger, a, 2)
    _commit(ledger, b, 3)
    got = {(g.source, g.pipeline, g.state): g for g in ledger.counts()}
    assert {k: g.events for k, g in got.items()} == {
        ("landing", "orders", "committed"): 2,
        ("landing", "orders", "queued"): 1,
        ("landing", "clicks", "queued"): 1,
        ("landing", None, "unrouted"): 1,
        ("inbox", "orders", "queued"): 1,
    }
    done = got[("landing", "orders", "committed")]
    assert done.rows_quarantined == 5
    committed = [e for e in (ledger.get(a.id), ledger.get(b.id)) if e is not None]
    assert done.oldest_landed_at == a.landed_at and done.newest_landed_at == b.landed_at
    assert done.last_committed_at == max(e.committed_at or 0 for e in committed)
    waiting = got[("landing", "orders", "queued")]
    assert waiting.last_committed_at is None and waiting.rows_quarantined == 0


def test_counts_of_an_empty_ledger_is_no_rows(ledger: Ledger) -> None:
    assert ledger.counts() == []


def test_object_count_counts_each_key_once_per_source(ledger: Ledger) -> None:
    _land(ledger, "a.csv", pipelines=["orders", "clicks"])  # fan-out: one object
    _land(ledger, "a.csv", content="h2")  # new bytes: another version of the same object
    _land(ledger, "b.csv")
    _land(ledger, "c.csv", source="inbox")
    assert ledger.object_count("landing") == 2
    assert ledger.object_count("inbox") == 1
    assert ledger.object_count("nowhere") == 0


def test_last_error_is_the_pipelines_newest_dead_error(ledger: Ledger) -> None:
    assert ledger.last_error("orders") is None
    (a,) = _land(ledger, "a.csv")
    (b,) = _land(ledger, "b.csv")
    (c,) = _land(ledger, "c.csv", pipelines=["clicks"])
    _kill(ledger, a, "first")
    time.sleep(0.01)  # updated_at orders them
    _kill(ledger, b, "second")
    assert ledger.last_error("orders") == "second"
    assert ledger.last_error("clicks") is None
    _kill(ledger, c, "clicks broke")
    assert ledger.last_error("clicks") == "clicks broke"


def test_pages_walk_every_event_once_in_landing_order(ledger: Ledger) -> None:
    landed = [e.id for i in range(23) for e in _land(ledger, f"k{i:02}.csv", pipelines=["a", "b"] if i % 5 == 0 else ["a"])]
    seen: list[Event] = []
    after = None
    while batch := ledger.page(after=after, limit=4):
        assert len(batch) <= 4
        seen += batch
        after = batch[-1].seq
    assert sorted(e.id for e in seen) == sorted(landed) and len(seen) == len(landed)
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    keys = [e.key for e in seen]
    assert keys == sorted(keys)  # landing order
    assert ledger.page(after=seqs[-1]) == []


def test_a_page_filters_by_state_pipeline_and_source(ledger: Ledger) -> None:
    (a,) = _land(ledger, "a.csv")
    _land(ledger, "b.csv", pipelines=["clicks"])
    _land(ledger, "c.csv", source="inbox")
    (d,) = _land(ledger, "d.csv")
    _kill(ledger, a, "bad")
    _kill(ledger, d, "bad")
    assert [e.key for e in ledger.page(states=["dead"])] == ["a.csv", "d.csv"]
    assert [e.key for e in ledger.page(states=["queued"], pipeline="orders")] == ["c.csv"]
    assert [e.key for e in ledger.page(source="landing", pipeline="clicks")] == ["b.csv"]
    assert [e.key for e in ledger.page(states=["queued", "dead"], source="landing")] == ["a.csv", "b.csv", "d.csv"]
    (first,) = ledger.page(states=["dead"], limit=1)
    assert [e.key for e in ledger.page(states=["dead"], after=first.seq)] == ["d.csv"]
    assert ledger.page(states=[]) == []


def test_count_says_how_many_events_are_left_to_page(ledger: Ledger) -> None:
    for i in range(7):
        _land(ledger, f"k{i}.csv", pipelines=["a"] if i % 2 else ["b"])
    assert ledger.count() == 7
    assert ledger.count(pipeline="a") == 3
    first = ledger.page(limit=2)
    assert ledger.count(after=first[-1].seq) == 5
    assert ledger.count(pipeline="b", after=first[-1].seq) == 3
    assert ledger.count(states=["dead"]) == 0


def test_find_by_name_matches_a_whole_key_or_its_last_segments(ledger: Ledger) -> None:
    for key in ["b.csv", "x/b.csv", "x/y/b.csv", "xb.csv", "x/B.csv", "b.csv/more", "x/y/z.csv"]:
        _land(ledger, key)
    assert sorted(e.key for e in ledger.find_by_name("b.csv")) == ["b.csv", "x/b.csv", "x/y/b.csv"]
    assert sorted(e.key for e in ledger.find_by_name("y/b.csv")) == ["x/y/b.csv"]
    assert [e.key for e in ledger.find_by_name("x/y/z.csv")] == ["x/y/z.csv"]
    assert ledger.find_by_name("nothing.csv") == []


def test_find_by_name_takes_wildcard_characters_literally(ledger: Ledger) -> None:
    _land(ledger, "d/a_1%.csv")
    _land(ledger, "d/ab1x.csv")
    assert [e.key for e in ledger.find_by_name("a_1%.csv")] == ["d/a_1%.csv"]
    assert ledger.find_by_name("a%") == []


def test_find_by_name_puts_the_exact_key_first_then_the_newest(ledger: Ledger) -> None:
    _land(ledger, "a.csv")
    for i in range(5):
        _land(ledger, f"d{i}/a.csv")
    found = ledger.find_by_name("a.csv", limit=3)
    assert [e.key for e in found] == ["a.csv", "d4/a.csv", "d3/a.csv"]
    assert all(e.seq > 0 for e in found)

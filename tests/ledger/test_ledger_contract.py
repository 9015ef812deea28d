"""One contract, every ledger backend: SQLite file, SQLite :memory: and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from icefloe.errors import IcefloeError
from icefloe.ledger import Ledger, event_id, open_ledger


def _land(ledger: Ledger, key: str = "a.csv", content: str = "h1", pipelines: list[str] | None = None) -> list:
    return ledger.land(
        source="landing", key=key, uri=f"file:///x/{key}", content_hash=content, size=10,
        pipelines=["orders"] if pipelines is None else pipelines,
    )  # fmt: skip


def test_landing_same_object_twice_creates_one_event(ledger: Ledger) -> None:
    first = _land(ledger)
    again = _land(ledger)
    assert len(first) == 1 and again == []
    assert len(ledger.events()) == 1
    assert first[0].id == event_id("landing", "a.csv", "h1", "orders")


def test_changed_content_under_same_key_is_a_new_event(ledger: Ledger) -> None:
    _land(ledger, content="h1")
    _land(ledger, content="h2")
    assert len(ledger.events()) == 2


def test_fan_out_makes_one_event_per_pipeline(ledger: Ledger) -> None:
    events = _land(ledger, pipelines=["a", "b"])
    assert sorted(e.pipeline for e in events) == ["a", "b"]
    assert len({e.id for e in events}) == 2


def test_unrouted_objects_are_kept_not_dropped(ledger: Ledger) -> None:
    (event,) = _land(ledger, pipelines=[])
    assert event.state == "unrouted"
    assert ledger.lease("w", limit=10, ttl=30) == []
    assert [e.state for e in ledger.events()] == ["unrouted"]


def test_an_unrouted_object_lands_for_its_pipelines_once_requeued(ledger: Ledger) -> None:
    _land(ledger, key="q.csv", pipelines=[])
    _land(ledger, key="other.csv", pipelines=[])
    ledger.requeue_unrouted([("landing", "q.csv")])
    (event,) = _land(ledger, key="q.csv", pipelines=["orders"])  # same bytes, now routed
    assert event.state == "queued" and event.pipeline == "orders"
    assert sorted((e.key, e.state) for e in ledger.events()) == [("other.csv", "unrouted"), ("q.csv", "queued")]


def test_lease_takes_each_event_once(ledger: Ledger) -> None:
    for i in range(5):
        _land(ledger, key=f"{i}.csv")
    first = ledger.lease("w1", limit=3, ttl=30)
    second = ledger.lease("w2", limit=10, ttl=30)
    assert len(first) == 3 and len(second) == 2
    assert not {e.id for e in first} & {e.id for e in second}
    assert all(e.state == "running" and e.attempts == 1 for e in first + second)


def test_expired_lease_is_taken_again(ledger: Ledger) -> None:
    _land(ledger)
    (held,) = ledger.lease("dead-worker", limit=1, ttl=0.01)
    time.sleep(0.03)
    (again,) = ledger.lease("w2", limit=1, ttl=30)
    assert again.id == held.id and again.attempts == 2 and again.lease_owner == "w2"


def test_release_dead_owners_frees_their_work_at_once(ledger: Ledger) -> None:
    _land(ledger)
    ledger.lease("gone", limit=1, ttl=3600)
    assert ledger.lease("w", limit=1, ttl=30) == []
    assert ledger.release_dead_owners(lambda owner: owner != "gone") == 1
    assert len(ledger.lease("w", limit=1, ttl=30)) == 1


def test_transient_failure_retries_then_dies_after_max_attempts(ledger: Ledger) -> None:
    ledger.land(source="s", key="k", uri="u", content_hash="h", size=1, pipelines=["p"], max_attempts={"p": 2})
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    assert ledger.mark_failed(ev.id, error="boom", kind="OSError", transient=True, backoff=0, max_backoff=0) == "retrying"
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    assert ev.attempts == 2
    assert ledger.mark_failed(ev.id, error="boom", kind="OSError", transient=True, backoff=0, max_backoff=0) == "dead"
    assert ledger.get(ev.id).error == "boom"  # type: ignore[union-attr]


def test_backoff_delays_the_retry(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    # full jitter draws from [0, backoff]; with a large backoff it is due later than now
    ledger.mark_failed(ev.id, error="x", kind="E", transient=True, backoff=1000, max_backoff=1000)
    assert ledger.get(ev.id).next_attempt_at >= time.time() - 1  # type: ignore[union-attr]


def test_permanent_failure_dies_at_once(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    assert ledger.mark_failed(ev.id, error="bad", kind="DataError", transient=False, backoff=1, max_backoff=1) == "dead"


def test_replay_requeues_dead_events_with_attempts_reset(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_failed(ev.id, error="bad", kind="DataError", transient=False, backoff=1, max_backoff=1)
    assert ledger.replay(None) == [ev.id]
    replayed = ledger.get(ev.id)
    assert replayed is not None and replayed.state == "queued" and replayed.attempts == 0 and replayed.error is None


def test_replay_refuses_events_that_are_not_dead(ledger: Ledger) -> None:
    (ev,) = _land(ledger)
    with pytest.raises(IcefloeError, match="not dead"):
        ledger.replay([ev.id])


def test_discard_is_terminal(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_failed(ev.id, error="bad", kind="DataError", transient=False, backoff=1, max_backoff=1)
    ledger.discard([ev.id])
    assert ledger.get(ev.id).state == "discarded"  # type: ignore[union-attr]
    assert ledger.lease("w", limit=1, ttl=30) == []


def test_mark_committed_records_table_snapshot_and_counts(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_committed([ev.id], table="a.b", snapshot_id=42, stats={ev.id: {"rows_in": 3, "rows_out": 2, "rows_quarantined": 1}})
    done = ledger.get(ev.id)
    assert done is not None
    assert (done.state, done.table, done.snapshot_id, done.rows_out, done.rows_quarantined) == ("committed", "a.b", 42, 2, 1)
    assert ledger.pending_count() == 0


def test_steps_form_the_trace_in_order(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    now = time.time()
    ledger.record_step([ev.id], "read", now, now + 0.01, rows=5)
    ledger.mark_committed([ev.id], table="a.b", snapshot_id=1, stats={})
    assert [s.step for s in ledger.steps(ev.id)] == ["landed", "leased", "read", "committed"]
    assert ledger.steps(ev.id)[2].detail == {"rows": 5}


def test_find_by_unique_prefix(ledger: Ledger) -> None:
    (ev,) = _land(ledger)
    assert ledger.find(ev.id[:8]).id == ev.id  # type: ignore[union-attr]
    assert ledger.find("zzzz") is None


def test_two_connections_share_one_sqlite_file(tmp_path: Path) -> None:
    a, b = open_ledger("sqlite:///l.db", tmp_path), open_ledger("sqlite:///l.db", tmp_path)
    _land(a)
    assert len(b.lease("w", limit=5, ttl=30)) == 1
    assert a.lease("w2", limit=5, ttl=30) == []


def test_object_stamps_remember_what_was_landed(ledger: Ledger) -> None:
    assert ledger.object_stamp("s", "k") is None
    ledger.set_object_stamp("s", "k", "10:123")
    ledger.set_object_stamp("s", "k", "11:456")
    assert ledger.object_stamp("s", "k") == "11:456"


def test_ordered_pipeline_waits_for_an_older_retrying_event(ledger: Ledger) -> None:
    _land(ledger, key="old.csv")
    time.sleep(0.002)
    _land(ledger, key="new.csv")
    (old,) = ledger.lease("w", limit=1, ttl=30, ordered=["orders"])
    ledger.mark_failed(old.id, error="flaky", kind="OSError", transient=True, backoff=1000, max_backoff=1000)
    assert ledger.lease("w", limit=5, ttl=30, ordered=["orders"]) == []  # new.csv must not overtake
    assert [e.key for e in ledger.lease("w", limit=5, ttl=30)] == ["new.csv"]  # unordered: no wait


def test_ordered_pipeline_waits_for_an_older_event_another_worker_holds(ledger: Ledger) -> None:
    _land(ledger, key="old.csv")
    time.sleep(0.002)
    _land(ledger, key="new.csv")
    ledger.lease("other", limit=1, ttl=30, ordered=["orders"])
    assert ledger.lease("me", limit=5, ttl=30, ordered=["orders"]) == []
    ledger.release_dead_owners(lambda owner: owner != "other")
    assert [e.key for e in ledger.lease("me", limit=5, ttl=30, ordered=["orders"])] == ["old.csv", "new.csv"]


def test_release_hands_an_event_back_without_counting_the_attempt(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.release([ev.id], "w")
    again = ledger.get(ev.id)
    assert again is not None and (again.state, again.attempts, again.lease_owner) == ("queued", 0, None)


def test_supersede_discards_with_the_reason(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.supersede(ev.id, "replaced")
    done = ledger.get(ev.id)
    assert done is not None and (done.state, done.error, done.error_kind) == ("discarded", "replaced", "Superseded")


def test_a_job_runs_once_per_target_until_it_finishes(ledger: Ledger) -> None:
    job = ledger.start_job("maintain", "sales.orders", "w1", stale_after=60)
    assert job is not None and job.state == "running"
    assert ledger.start_job("maintain", "sales.orders", "w2", stale_after=60) is None
    other = ledger.start_job("maintain", "sales.items", "w2", stale_after=60)
    assert other is not None
    ledger.finish_job(job, "succeeded", {"expired_snapshots": 3})
    again = ledger.start_job("maintain", "sales.orders", "w2", stale_after=60)
    assert again is not None
    ledger.finish_job(again, "failed", {}, error="boom")
    listed = ledger.jobs(kind="maintain", target="sales.orders")
    assert [(j.state, j.detail, j.error) for j in listed] == [("failed", {}, "boom"), ("succeeded", {"expired_snapshots": 3}, None)]
    assert listed[1].ended_at is not None and listed[1].ended_at >= listed[1].started_at
    assert [j.target for j in ledger.jobs(limit=1)] == ["sales.orders"]


def test_a_job_abandoned_by_a_dead_worker_stops_blocking_after_it_goes_stale(ledger: Ledger) -> None:
    first = ledger.start_job("maintain", "t.a", "dead-worker", stale_after=60)
    assert first is not None
    taken = ledger.start_job("maintain", "t.a", "w2", stale_after=0)
    assert taken is not None and taken.owner == "w2"
    states = {j.owner: (j.state, j.error) for j in ledger.jobs(target="t.a")}
    assert states["dead-worker"] == ("failed", "abandoned (worker stopped)")
    assert states["w2"] == ("running", None)


# -- issue 8: versions, per-object order, content duplicates, heartbeats ----------------------------
def test_an_object_changing_back_to_earlier_bytes_is_a_new_version(ledger: Ledger) -> None:
    (a,) = _land(ledger, content="hA")
    (b,) = _land(ledger, content="hB")
    (again,) = _land(ledger, content="hA")
    assert len({a.id, b.id, again.id}) == 3 and again.version == 2
    assert _land(ledger, content="hA") == []  # the current version delivered again: nothing new
    assert [e.id for e in ledger.object_events("landing", "a.csv")] == [again.id]
    assert again.landed_at > b.landed_at > a.landed_at


def test_a_committed_version_is_what_a_new_one_replaces(ledger: Ledger) -> None:
    (a,) = _land(ledger, content="hA")
    (b,) = _land(ledger, content="hB")
    assert not ledger.has_committed_version("landing", "a.csv", "orders", other_than=b.id)
    ledger.lease("w", limit=1, ttl=30)
    ledger.mark_committed([a.id], table="t.x", snapshot_id=1, stats={})
    assert ledger.has_committed_version("landing", "a.csv", "orders", other_than=b.id)
    assert not ledger.has_committed_version("landing", "a.csv", "orders", other_than=a.id)
    assert not ledger.has_committed_version("landing", "a.csv", "other", other_than=b.id)


def test_same_content_finds_the_earliest_other_object_with_those_bytes(ledger: Ledger) -> None:
    (a,) = _land(ledger, key="a.csv", content="h")
    (b,) = _land(ledger, key="b.csv", content="h")
    (c,) = _land(ledger, key="c.csv", content="h", pipelines=["other"])
    assert ledger.same_content("orders", "h", before=a) is None
    found = ledger.same_content("orders", "h", before=b)
    assert found is not None and found.id == a.id
    assert ledger.same_content("other", "h", before=c) is None  # per pipeline
    _land(ledger, key="a.csv", content="h2")  # a.csv's bytes changed: "h" is no longer loaded there
    assert ledger.same_content("orders", "h", before=b) is None


def test_an_append_pipeline_keeps_one_objects_versions_in_order(ledger: Ledger) -> None:
    _land(ledger, key="a.csv", content="h1")
    (old,) = ledger.lease("w", limit=1, ttl=30)
    ledger.mark_failed(old.id, error="x", kind="T", transient=True, backoff=60, max_backoff=60)
    _land(ledger, key="a.csv", content="h2")
    (other,) = _land(ledger, key="b.csv", content="h3")
    assert [e.id for e in ledger.lease("w", limit=10, ttl=30, ordered_by_key=["orders"])] == [other.id]


def test_heartbeats_list_workers_and_a_clean_stop(ledger: Ledger) -> None:
    ledger.heartbeat("host-a:123:abcdef")
    ledger.heartbeat("host-b:456:fedcba")
    ledger.heartbeat("host-a:123:abcdef", stopped=True)
    workers = {w.owner: w for w in ledger.workers()}
    assert (workers["host-a:123:abcdef"].host, workers["host-a:123:abcdef"].pid) == ("host-a", 123)
    assert workers["host-a:123:abcdef"].stopped_at is not None and workers["host-b:456:fedcba"].stopped_at is None
    assert workers["host-b:456:fedcba"].heartbeat_at >= workers["host-b:456:fedcba"].started_at


def test_supersede_as_a_duplicate_names_its_kind(ledger: Ledger) -> None:
    _land(ledger)
    (ev,) = ledger.lease("w", limit=1, ttl=30)
    ledger.supersede(ev.id, "same bytes as landing:b.csv", kind="Duplicate")
    got = ledger.get(ev.id)
    assert got is not None and got.state == "discarded" and got.error_kind == "Duplicate"
    assert [s.step for s in ledger.steps(ev.id)][-1] == "duplicate"


def test_find_folds_the_case_of_an_id_prefix(ledger: Ledger) -> None:
    (ev,) = _land(ledger)
    found = ledger.find(ev.id[:8].upper())
    assert found is not None and found.id == ev.id

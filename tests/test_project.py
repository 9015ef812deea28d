"""End to end through the Python API: a file lands, its rows are queryable, exactly once."""

from __future__ import annotations

import gzip
import time
from typing import Any
from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import ORDERS, csv_file, make_project


def _orders(root: Path, name: str, ids: range, amount: str = "1.50") -> Path:
    return csv_file(root / name, "id,ts,amount", [f"{i},2026-01-0{1 + i % 5} 10:00:00,{amount}" for i in ids])


def test_ingest_commits_rows_that_sql_can_read(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    (event,) = project.ingest([_orders(tmp_path, "a.csv", range(10))])
    assert event.state == "committed" and event.rows_out == 10 and event.snapshot_id
    result = project.sql("select count(*) as n, sum(amount) as total from sales.orders").to_pylist()
    assert result == [{"n": 10, "total": pytest.approx(15.0)}]
    row = project.sql("select _icefloe_event, _icefloe_source from sales.orders limit 1").to_pylist()[0]
    assert row == {"_icefloe_event": event.id, "_icefloe_source": "landing:a.csv"}


def test_same_file_landed_again_is_a_no_op(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    file = _orders(tmp_path, "a.csv", range(10))
    first = project.ingest([file])
    again = project.ingest([file])
    assert [e.id for e in first] == [e.id for e in again]
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    assert len(project.history("sales.orders")) == 1


def test_changed_content_under_the_same_key_is_a_new_event(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    (first,) = project.ingest([_orders(tmp_path, "a.csv", range(3))])
    (second,) = project.ingest([_orders(tmp_path, "a.csv", range(3, 5))])
    assert first.id != second.id and second.state == "committed"
    # issue 8 item 4: in append mode the new version replaces the rows the object brought before
    assert project.sql("select list(id order by id) as ids from sales.orders").to_pylist() == [{"ids": [3, 4]}]


def test_many_files_coalesce_into_few_commits(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    files = [_orders(tmp_path / "in", f"{n}.csv", range(n * 10, n * 10 + 10)) for n in range(30)]
    for file in files:
        (tmp_path / "p/landing" / file.name).write_bytes(file.read_bytes())
    project.run(once=True)
    assert project.sql("select count(distinct id) as n from sales.orders").to_pylist() == [{"n": 300}]
    assert len(project.history("sales.orders")) <= 3


def test_upsert_mode_updates_by_key(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    project.ingest([_orders(tmp_path, "a.csv", range(5), "1.00")])
    project.ingest([_orders(tmp_path, "b.csv", range(3, 8), "2.00")])
    rows = project.sql("select id, amount from sales.orders order by id").to_pylist()
    assert [(r["id"], float(r["amount"])) for r in rows] == [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 2), (6, 2), (7, 2)]


def test_replace_source_mode_replaces_what_the_object_brought_before(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "mode": "replace_source"}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    project.ingest([_orders(tmp_path, "a.csv", range(5)), _orders(tmp_path, "b.csv", range(100, 102))])
    project.ingest([_orders(tmp_path, "a.csv", range(50, 52))])
    ids = [r["id"] for r in project.sql("select id from sales.orders order by id").to_pylist()]
    assert ids == [50, 51, 100, 101]


def test_overwrite_mode_keeps_only_the_latest_file(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "mode": "overwrite"}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    project.ingest([_orders(tmp_path, "a.csv", range(5))])
    project.ingest([_orders(tmp_path, "b.csv", range(7, 9))])
    assert [r["id"] for r in project.sql("select id from sales.orders order by id").to_pylist()] == [7, 8]


def test_new_column_in_a_later_file_evolves_the_table(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    project.ingest([_orders(tmp_path, "a.csv", range(2))])
    later = csv_file(tmp_path / "b.csv", "id,ts,amount,channel", ["9,2026-01-01 00:00:00,3.00,web"])
    project.ingest([later])
    rows = project.sql("select id, channel from sales.orders order by id").to_pylist()
    assert rows == [{"id": 0, "channel": None}, {"id": 1, "channel": None}, {"id": 9, "channel": "web"}]


def test_incompatible_change_kills_only_that_event(tmp_path: Path) -> None:
    pipeline = {"read": {"format": "csv"}, "write": {"table": "s.t"}}
    project = Project(make_project(tmp_path / "p", {"p": pipeline}))
    project.ingest([csv_file(tmp_path / "a.csv", "id,v", ["1,2"])])
    (bad,) = project.ingest([csv_file(tmp_path / "b.csv", "id,v", ["2,hello"])])
    assert bad.state == "dead" and bad.error_kind == "SchemaError" and "'v'" in (bad.error or "")
    (good,) = project.ingest([csv_file(tmp_path / "c.csv", "id,v", ["3,4"])])
    assert good.state == "committed"
    assert project.sql("select count(*) as n from s.t").to_pylist() == [{"n": 2}]


def test_fan_out_sends_one_file_to_two_pipelines(tmp_path: Path) -> None:
    pipelines = {
        "raw": {"read": {"format": "ndjson"}, "write": {"table": "web.clicks"}},
        "by_page": {
            "read": {"format": "ndjson"},
            "transform": [{"sql": "select page, count(*) as hits from batch group by page"}],
            "write": {"table": "web.hits_by_page", "mode": "upsert", "key": ["page"]},
        },
    }
    routes = [{"source": "landing", "match": "*.ndjson", "pipeline": ["raw", "by_page"]}]
    project = Project(make_project(tmp_path / "p", pipelines, routes))
    file = tmp_path / "c.ndjson"
    file.write_text('{"page": "/a"}\n{"page": "/a"}\n{"page": "/b"}\n')
    events = project.ingest([file])
    assert sorted(e.pipeline or "" for e in events) == ["by_page", "raw"]
    assert project.sql("select count(*) as n from web.clicks").to_pylist() == [{"n": 3}]
    hits = project.sql("select page, hits from web.hits_by_page order by page").to_pylist()
    assert hits == [{"page": "/a", "hits": 2}, {"page": "/b", "hits": 1}]


def test_unrouted_files_are_recorded_and_shown_not_dropped(tmp_path: Path) -> None:
    routes = [{"source": "landing", "match": "*.csv", "pipeline": "orders"}]
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}, routes))
    (tmp_path / "p/landing/notes.txt").write_text("hello")
    project.run(once=True)
    (source,) = [r for r in project.status() if r["kind"] == "source"]
    assert source["unrouted"] == 1
    assert project.sql("select key, state from icefloe.events").to_pylist() == [{"key": "notes.txt", "state": "unrouted"}]


def test_failing_rows_go_to_quarantine_and_the_rest_commits(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "checks": [{"range": {"amount": [0, None]}}]}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    file = csv_file(tmp_path / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,5", "2,2026-01-01 00:00:00,-1"])
    (event,) = project.ingest([file])
    assert (event.state, event.rows_in, event.rows_out, event.rows_quarantined) == ("committed", 2, 1, 1)
    assert project.sql("select id, _icefloe_check from icefloe.quarantine").to_pylist() == [{"id": 2, "_icefloe_check": "range(amount)"}]


def test_python_and_sql_transforms_run_in_order(tmp_path: Path) -> None:
    root = tmp_path / "p"
    pipeline = {**ORDERS, "transform": [{"sql": "select *, amount * 2 as doubled from batch"}, {"python": "hooks:tag"}]}
    make_project(root, {"orders": pipeline})
    (root / "hooks.py").write_text("import pyarrow as pa\ndef tag(t):\n    return t.append_column('tag', pa.array(['x'] * t.num_rows))\n")
    project = Project(root)
    project.ingest([_orders(tmp_path, "a.csv", range(1), "2.00")])
    (row,) = project.sql("select doubled, tag from sales.orders").to_pylist()
    assert float(row["doubled"]) == 4.0 and row["tag"] == "x"


def test_failing_user_code_is_dead_with_pipeline_step_and_file(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_project(root, {"orders": {**ORDERS, "transform": [{"python": "hooks_bad:boom"}]}})
    (root / "hooks_bad.py").write_text("def boom(t):\n    raise RuntimeError('no way')\n")
    (event,) = Project(root).ingest([_orders(tmp_path, "a.csv", range(1))])
    assert event.state == "dead" and event.error_kind == "UserCodeError"
    assert "pipeline=orders" in (event.error or "") and "RuntimeError: no way" in (event.error or "")
    assert "step=transform[0] python" in (event.error or "")


BAD_INPUTS = {
    "malformed.csv": (b"id,ts,amount\n1,2026-01-01 00:00:00,1\n2,2026-01-01 00:00:00,1,extra\n", ":3"),
    "wrongtype.csv": (b"id,ts,amount\n1,2026-01-01 00:00:00,1\nx,2026-01-01 00:00:00,1\n", ":3"),
    "badutf8.csv": (b"id,ts,amount\n1,2026-01-01 00:00:00,1\n2,2026-01-01 00:00:00,1\n3,\xff\xfe,1\n", ":4"),
    "truncated.csv.gz": (gzip.compress(b"id,ts,amount\n" + b"1,2026-01-01 00:00:00,1\n" * 2000)[:-40], "gzip"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_dead_with_file_and_position_while_others_commit(tmp_path: Path, name: str) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    content, where = BAD_INPUTS[name]
    bad = tmp_path / name
    bad.write_bytes(content)
    events = project.ingest([_orders(tmp_path, "good1.csv", range(3)), bad, _orders(tmp_path, "good2.csv", range(3, 6))])
    states = {e.key: e for e in events}
    assert states["good1.csv"].state == "committed" and states["good2.csv"].state == "committed"
    dead = states[name]
    assert dead.state == "dead" and dead.attempts == 1, dead.error
    assert f"landing:{name}" in (dead.error or "") and where in (dead.error or "")
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 6}]


def test_dlq_replay_after_fixing_the_config(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "read": {"format": "csv", "schema": {"amount": "long"}}}})
    (event,) = Project(root).ingest([_orders(tmp_path, "a.csv", range(4), "1.50")])
    assert event.state == "dead" and "amount" in (event.error or "")
    make_project(root, {"orders": {**ORDERS, "read": {"format": "csv", "schema": {"amount": "double"}}}})
    fixed = Project(root)
    assert fixed.replay(None) == [event.id]
    fixed.run(once=True)
    assert fixed.event(event.id).state == "committed"
    assert fixed.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 4}]


def test_time_travel_with_as_of(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    (first,) = project.ingest([_orders(tmp_path, "a.csv", range(3))])
    project.ingest([_orders(tmp_path, "b.csv", range(3, 10))])
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 10}]
    assert project.sql("select count(*) as n from sales.orders", as_of=first.snapshot_id).to_pylist() == [{"n": 3}]


def test_trace_shows_every_step_from_landing_to_commit(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    (event,) = project.ingest([_orders(tmp_path, "a.csv", range(3))])
    steps = [s["step"] for s in project.trace(event.id[:6])["steps"]]
    assert steps[:3] == ["landed", "leased", "read"] and steps[-2:] == ["commit", "committed"]


def test_restart_does_not_rehash_unchanged_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    for n in range(3):
        _orders(root / "landing", f"{n}.csv", range(n * 3, n * 3 + 3))
    Project(root).run(once=True)
    again = Project(root)
    from icefloe.sources.folder import FolderSource

    calls: list[Any] = []
    original = FolderSource.describe
    monkeypatch.setattr(FolderSource, "describe", lambda self, ref: calls.append(ref) or original(self, ref))
    _orders(root / "landing", "1.csv", range(100, 102))  # changed content: hashed and landed anew
    again.run(once=True)
    assert [r.key for r in calls] == ["1.csv"]
    # 1.csv's new version replaces its 3 old rows with 2 (issue 8 item 4: append keeps the newest)
    assert again.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 8}]


def test_ordered_pipeline_holds_newer_events_back_while_an_older_one_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]}, "retry": {"backoff": "10ms"}}
    root = make_project(tmp_path / "p", {"orders": pipeline})
    _orders(root / "landing", "a.csv", range(1), "1.00")
    time.sleep(0.01)
    _orders(root / "landing", "b.csv", range(1), "2.00")
    time.sleep(0.05)  # both settled: the first lease takes a and b together
    project = Project(root)
    from icefloe.pipelines.runner import PipelineRunner

    original, failed = PipelineRunner.run, []

    def flaky(self, event, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if event.key == "a.csv" and not failed:
            failed.append(event.id)
            raise OSError("disk hiccup")  # transient: a.csv will retry
        return original(self, event, path, *args, **kwargs)

    monkeypatch.setattr(PipelineRunner, "run", flaky)
    project.run(once=True)
    assert failed and project.sql("select id, amount from sales.orders").to_pylist() == [{"id": 0, "amount": pytest.approx(2)}]
    steps = [s.step for e in project.ledger.events() if e.key == "b.csv" for s in project.ledger.steps(e.id)]
    assert "released" in steps  # b.csv was handed back rather than committed ahead of a.csv


def test_event_recovered_from_table_history_keeps_its_row_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS}, lease="200ms")
    _orders(root / "landing", "a.csv", range(3))
    time.sleep(0.05)
    crashed = Project(root)
    from icefloe.ledger.sqlite import SqliteLedger

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies right after the Iceberg commit

    monkeypatch.setattr(SqliteLedger, "mark_committed", crash)
    with pytest.raises(KeyboardInterrupt):
        crashed.run(once=True)
    monkeypatch.undo()
    time.sleep(0.3)  # its lease runs out
    with Project(root) as project:
        project.run(once=True)
        (event,) = project.ledger.events()
        assert (event.state, event.rows_in, event.rows_out) == ("committed", 3, 3)
        assert len(project.history("sales.orders")) == 1
        assert "commit" in [s.step for s in project.ledger.steps(event.id)]  # once, by the crashed run


def test_upsert_rows_without_a_key_are_quarantined_and_the_rest_commits(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"]}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    (event,) = project.ingest([csv_file(tmp_path / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00", ",2026-01-01T00:00:00,2.00"])])
    assert event.state == "committed" and event.rows_out == 1 and event.rows_quarantined == 1
    assert project.sql("select id from sales.orders").to_pylist() == [{"id": 1}]
    (bad,) = project.sql("select amount, _icefloe_check from icefloe.quarantine").to_pylist()
    assert float(bad["amount"]) == 2.0 and "id" in bad["_icefloe_check"]


def test_ingest_reports_how_far_the_copy_onto_the_source_is(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    rows = [f"{i},2026-01-01T00:00:00,{i}.00" for i in range(300_000)]
    path = csv_file(tmp_path / "big.csv", "id,ts,amount", rows)
    copied: list[tuple[Path, int]] = []
    (event,) = project.ingest([path], on_copy=lambda p, done: copied.append((p, done)))
    assert event.state == "committed"
    assert len(copied) > 1 and {p for p, _ in copied} == {path.resolve()}
    assert [d for _, d in copied] == sorted(d for _, d in copied) and copied[-1][1] == path.stat().st_size

"""/metrics: every series at zero from the start, the engine's counters after a run, the ledger's
gauges from one indexed query, and no file name in any label."""

from __future__ import annotations

import math
import sqlite3
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from icefloe import Project
from icefloe.observe.metrics import NULL_METRICS, exposition, serve_metrics
from tests.helpers import ORDERS, csv_file, make_project

CLICKS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "web.clicks"}}


def _samples(project: Project) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = exposition(project.runtime)
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), math.nan)


def test_every_series_of_the_config_is_there_at_zero_before_any_work(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS, "clicks": CLICKS})
    with Project(root) as project:
        s = _samples(project)
        for pipeline, table in (("orders", "sales.orders"), ("clicks", "web.clicks")):
            assert _value(s, "icefloe_events_committed_total", pipeline=pipeline, table=table) >= 0
            assert _value(s, "icefloe_events_dead_total", pipeline=pipeline) >= 0
            assert _value(s, "icefloe_backlog_events", pipeline=pipeline) == 0
            assert _value(s, "icefloe_oldest_pending_age_seconds", pipeline=pipeline) == 0
            assert _value(s, "icefloe_dead_letter_events", pipeline=pipeline) == 0
            assert _value(s, "icefloe_commit_duration_seconds_count", table=table) >= 0
            assert math.isnan(_value(s, "icefloe_table_freshness_seconds", table=table))  # never committed
        assert _value(s, "icefloe_objects_discovered_total", source="landing") >= 0
        assert _value(s, "icefloe_errors_total", stage="process", kind="DataError") >= 0
        assert _value(s, "icefloe_ledger_up") == 1
        assert any(name == "icefloe_build_info" and v == 1 for (name, _), v in s.items())


def test_a_run_moves_the_counters_and_the_ledger_gauges(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1", "2,2026-01-01 00:00:00,2"])
    csv_file(root / "landing" / "b.csv", "id,ts,amount", ["3,2026-01-01 00:00:00,1"])
    csv_file(root / "landing" / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    with Project(root) as project:
        # the counters are the process's (other tests in this process counted too): compare
        before = _samples(project)
        project.engine().reconcile()
        pending = _samples(project)
        assert _value(pending, "icefloe_backlog_events", pipeline="orders") == 3
        assert _value(pending, "icefloe_oldest_pending_age_seconds", pipeline="orders") >= 0
        project.run(once=True)
        after = _samples(project)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("icefloe_objects_discovered_total", source="landing") == 3
    assert grew("icefloe_events_committed_total", pipeline="orders", table="sales.orders") == 2
    assert grew("icefloe_events_dead_total", pipeline="orders") == 1
    assert grew("icefloe_rows_committed_total", pipeline="orders", table="sales.orders") == 3
    assert grew("icefloe_read_bytes_total", pipeline="orders") == sum(
        (root / "landing" / n).stat().st_size for n in ("a.csv", "b.csv")
    )  # the objects read through (a failed read counts as an error instead)
    assert grew("icefloe_errors_total", stage="process", kind="DataError") == 1
    assert grew("icefloe_commit_duration_seconds_count", table="sales.orders") >= 1
    assert _value(after, "icefloe_backlog_events", pipeline="orders") == 0
    assert _value(after, "icefloe_dead_letter_events", pipeline="orders") == 1
    assert 0 <= _value(after, "icefloe_table_freshness_seconds", table="sales.orders") < 600
    assert _value(after, "icefloe_table_last_commit_timestamp_seconds", table="sales.orders") > 0
    # labels are configured names, stages and error classes: never a file
    values = {v for (_, labels) in after for _, v in labels}
    assert not any(".csv" in v or "landing/" in v for v in values), values


def test_the_scrape_query_walks_indexes_not_the_events(tmp_path: Path) -> None:
    from icefloe.ledger.sqlite import SqliteLedger

    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    seen: list[str] = []
    ledger._connection().set_trace_callback(seen.append)  # type: ignore[attr-defined]
    ledger.gauges(["sales.orders", "web.clicks"])
    ledger.close()
    (sql,) = [s for s in seen if "UNION ALL" in s]  # the one statement a scrape sends
    con = sqlite3.connect(path)
    plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql)]
    con.close()
    assert not [p for p in plan if p.startswith("SCAN events")], plan  # no walk over every event
    # the counts are the counters' rows; the oldest pending landing one seek per (state, pipeline)
    assert sum(p.startswith("SCAN c") or "event_counts" in p for p in plan) == 2, plan
    assert sum("USING COVERING INDEX events_backlog (state=? AND pipeline=?)" in p for p in plan) == 1, plan
    assert sum("events_freshness" in p for p in plan) == 2, plan


def test_run_metrics_port_serves_the_scrape_and_metrics_can_be_off(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    with Project(root) as project:
        server, _ = serve_metrics(project.runtime, 0)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10) as reply:
                body = reply.read().decode()
        finally:
            server.shutdown()
            server.server_close()
        assert 'icefloe_backlog_events{pipeline="orders"} 0.0' in body
        assert "icefloe_events_committed_total" in body
    off = make_project(tmp_path / "off", {"orders": ORDERS}, telemetry={"metrics": False})
    with Project(off) as project:
        assert project.engine().metrics is NULL_METRICS


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    from prometheus_client.exposition import generate_latest

    from icefloe.observe.metrics import Metrics

    metrics = Metrics()
    for seconds in (0.005, 0.03, 0.03, 100.0, 1000.0):
        metrics.commit_seconds("t", seconds)

    class One:
        def collect(self):  # type: ignore[no-untyped-def]
            return metrics.collect()

    s = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for family in text_string_to_metric_families(generate_latest(One()).decode())  # type: ignore[arg-type]
        for x in family.samples
    }
    bucket = "icefloe_commit_duration_seconds_bucket"
    assert _value(s, bucket, table="t", le="0.01") == 1
    assert _value(s, bucket, table="t", le="0.05") == 3
    assert _value(s, bucket, table="t", le="300.0") == 4
    assert _value(s, bucket, table="t", le="+Inf") == 5
    assert _value(s, "icefloe_commit_duration_seconds_count", table="t") == 5
    assert _value(s, "icefloe_commit_duration_seconds_sum", table="t") == 0.005 + 0.03 + 0.03 + 100.0 + 1000.0


def test_run_refuses_a_metrics_port_already_taken_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    from tests.cli.invoke import invoke

    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke(capsys, "run", "--once", "-p", str(root), "--metrics-port", str(port))
    assert code == 2 and f"--metrics-port {port}: cannot listen on 127.0.0.1" in err
    with Project(root) as project:
        assert project.ledger.events() == []  # refused before anything landed

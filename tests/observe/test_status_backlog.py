"""`status` counts what waits in the sources before any worker saw it, and what checks rejected."""

from __future__ import annotations

import os
import time
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, csv_file, make_project


def _row(rows: list[dict[str, object]], kind: str, name: str) -> dict[str, object]:
    return next(r for r in rows if r["kind"] == kind and r["name"] == name)


def test_files_waiting_with_no_worker_are_backlog_with_the_oldest_as_lag(tmp_path: Path) -> None:
    routes = [{"source": "landing", "match": "orders/*.csv", "pipeline": "orders"}]
    root = make_project(tmp_path / "p", {"orders": ORDERS}, routes=routes)
    hour_ago = time.time() - 3600
    for name in ("a.csv", "b.csv"):
        path = csv_file(root / "landing" / "orders" / name, "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
        os.utime(path, (hour_ago, hour_ago))  # landed an hour ago, while nothing ran
    csv_file(root / "landing" / "stray.txt", "x", ["1"])  # no route: waiting on the source only
    project = Project(root)
    rows = project.status()
    pipeline = _row(rows, "pipeline", "orders")
    assert pipeline["backlog"] == 2 and float(pipeline["lag_s"]) >= 3600  # type: ignore[arg-type]
    assert pipeline["waiting"] == 2  # of the backlog, objects no worker has landed yet
    assert _row(rows, "source", "landing")["waiting"] == 3

    project.run(once=True)
    rows = project.status()
    pipeline = _row(rows, "pipeline", "orders")
    assert (pipeline["backlog"], pipeline["waiting"], pipeline["lag_s"], pipeline["committed"]) == (0, 0, 0.0, 2)
    assert _row(rows, "source", "landing")["waiting"] == 0  # the stray file landed as unrouted

    # a landed file rewritten in place is waiting again until a worker lands the new version
    csv_file(root / "landing" / "orders" / "a.csv", "id,ts,amount", ["2,2026-01-01 00:00:00,1"])
    pipeline = _row(project.status(), "pipeline", "orders")
    assert (pipeline["backlog"], pipeline["waiting"]) == (1, 1)
    project.close()


def test_quarantined_rows_are_counted_per_pipeline_and_table(tmp_path: Path) -> None:
    checked = {**ORDERS, "checks": [{"not_null": ["amount"]}]}
    plain = {**ORDERS, "write": {"table": "sales.orders"}}
    routes = [
        {"source": "landing", "match": "checked/*.csv", "pipeline": "checked"},
        {"source": "landing", "match": "plain/*.csv", "pipeline": "plain"},
    ]
    root = make_project(tmp_path / "p", {"checked": checked, "plain": plain}, routes=routes)
    rows_in = ["1,2026-01-01 00:00:00,1", "2,2026-01-01 00:00:00,", "3,2026-01-01 00:00:00,"]
    csv_file(root / "landing" / "checked" / "a.csv", "id,ts,amount", rows_in)
    csv_file(root / "landing" / "checked" / "b.csv", "id,ts,amount", rows_in[1:2])
    csv_file(root / "landing" / "plain" / "c.csv", "id,ts,amount", rows_in)
    project = Project(root)
    project.run(once=True)
    rows = project.status()
    assert _row(rows, "pipeline", "checked")["quarantined"] == 3
    assert _row(rows, "pipeline", "plain")["quarantined"] == 0
    table = _row(rows, "table", "sales.orders")
    assert table["quarantined"] == 3 and table["rows"] == 1 + 3
    project.close()

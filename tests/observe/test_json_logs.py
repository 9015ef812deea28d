"""`--log-format json`: one JSON object a log line, each with event_id, pipeline, table and
trace_id; a line about an event names it and the trace the ledger keeps for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from icefloe import Project
from icefloe.observe.logs import FIELDS
from tests.helpers import ORDERS, csv_file, make_project


def test_run_logs_json_lines_naming_the_event_pipeline_table_and_trace(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "good.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    csv_file(root / "landing" / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    out = subprocess.run(
        [sys.executable, "-m", "icefloe", "--log-format", "json", "run", "--once", "-p", str(root)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 3, out.stderr  # done, one event dead-lettered
    logged = [line for line in out.stderr.splitlines() if line.startswith("{")]
    lines = [json.loads(line) for line in logged]
    assert lines and all(set(FIELDS) <= set(line) and {"time", "level", "message"} <= set(line) for line in lines)
    with Project(root) as project:
        bad = next(e for e in project.ledger.events() if e.key == "bad.csv")
    assert bad.traceparent is not None
    (dead,) = [line for line in lines if "dead:" in line["message"]]
    assert dead["level"] == "warning" and dead["event_id"] == bad.id
    assert (dead["pipeline"], dead["table"], dead["trace_id"]) == ("orders", "sales.orders", bad.traceparent.split("-")[1])
    (commit,) = [line for line in lines if line["message"].startswith("committed 1 event")]
    assert commit["table"] == "sales.orders" and commit["event_id"] is None  # a batch, not one event
    # the only other stderr line is the run's summary, which is output, not a log line
    assert [line for line in out.stderr.splitlines() if not line.startswith("{")] == [
        "committed 1, dead 1, discarded 0, retrying 0, pending 0, rows 1"
    ]

"""The CLI end to end: JSON listings, exit codes, and `python -m icefloe`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icefloe.cli import EXIT_DEAD, EXIT_NOT_FOUND, EXIT_USAGE
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", {"orders": ORDERS})


def _good(tmp_path: Path) -> Path:
    return csv_file(tmp_path / "good.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,2.50", "2,2026-01-02 00:00:00,3.50"])


def test_ingest_then_sql_status_tables_history_as_json(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "ingest", "-p", str(project), "--format", "json", str(_good(tmp_path)))
    assert code == 0
    (event,) = json.loads(out)
    assert event["state"] == "committed" and event["rows"] == 2

    code, out, _ = invoke(capsys, "sql", "-p", str(project), "--format", "json", "select id from sales.orders order by id")
    assert (code, json.loads(out)) == (0, [{"id": 1}, {"id": 2}])

    code, out, _ = invoke(capsys, "status", "-p", str(project), "--format", "json")
    rows = json.loads(out)
    pipeline = next(r for r in rows if r["kind"] == "pipeline")
    assert (pipeline["committed"], pipeline["backlog"], pipeline["dead"]) == (1, 0, 0)
    table = next(r for r in rows if r["kind"] == "table")
    assert (table["rows"], table["snapshots"]) == (2, 1)

    code, out, _ = invoke(capsys, "tables", "-p", str(project), "--format", "json")
    assert [t["table"] for t in json.loads(out)] == ["sales.orders"]

    code, out, _ = invoke(capsys, "history", "-p", str(project), "--format", "json", "sales.orders")
    (snapshot,) = json.loads(out)
    assert snapshot["events"] == [event["event"]] and snapshot["added_rows"] == 2

    code, out, _ = invoke(capsys, "trace", "-p", str(project), "--format", "json", event["event"][:8])
    assert [s["step"] for s in json.loads(out)][-1] == "committed"


def test_sql_csv_format(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    invoke(capsys, "ingest", "-p", str(project), "--format", "json", str(_good(tmp_path)))
    code, out, _ = invoke(capsys, "sql", "-p", str(project), "--format", "csv", "select id, amount from sales.orders order by id")
    assert out.splitlines() == ["id,amount", "1,2.50", "2,3.50"]


def test_dead_event_exit_code_then_dlq_list_show_replay_discard(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = csv_file(tmp_path / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    code, out, _ = invoke(capsys, "ingest", "-p", str(project), "--format", "json", str(bad))
    assert code == EXIT_DEAD
    code, out, _ = invoke(capsys, "dlq", "list", "-p", str(project), "--format", "json")
    (dead,) = json.loads(out)
    assert "landing:bad.csv:2" in dead["error"] and dead["kind"] == "DataError"
    code, out, _ = invoke(capsys, "dlq", "show", "-p", str(project), "--format", "json", dead["event"])
    assert json.loads(out)[0]["state"] == "dead"
    code, _, err = invoke(capsys, "dlq", "replay", "-p", str(project), "--now", dead["event"])
    assert code == EXIT_DEAD and "committed 0, dead 1" in err  # still bad data: dead again, and the exit code says so
    code, _, err = invoke(capsys, "dlq", "discard", "-p", str(project), "--all")
    assert code == 0 and "discarded 1" in err
    code, out, _ = invoke(capsys, "dlq", "list", "-p", str(project), "--format", "json")
    assert json.loads(out) == []


def test_dlq_replay_needs_ids_or_all(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "dlq", "replay", "-p", str(project))
    assert code == EXIT_USAGE and "--all" in err


def test_bad_config_exits_2_with_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "icefloe.yaml").write_text("catalog: sqlite:///c.db\npipelines:\n  p:\n    write: {table: nodots}\n")
    code, _, err = invoke(capsys, "status", "-p", str(tmp_path))
    assert code == EXIT_USAGE and "icefloe.yaml:4" in err


def test_unknown_event_exits_4(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "trace", "-p", str(project), "deadbeef")
    assert code == EXIT_NOT_FOUND and "no event" in err


def test_init_creates_a_runnable_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "init", str(tmp_path / "shop"))
    assert code == 0 and (tmp_path / "shop/icefloe.yaml").exists() and (tmp_path / "shop/landing").is_dir()
    csv_file(tmp_path / "shop/landing/inventory/a.csv", "sku,qty", ["A,1"])
    code, _, err = invoke(capsys, "run", "-p", str(tmp_path / "shop"), "--once")
    assert code == 0 and "committed 1" in err
    code, _, err = invoke(capsys, "init", str(tmp_path / "shop"))
    assert code == EXIT_USAGE and "exists already" in err


def test_python_dash_m_is_the_same_cli(project: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "icefloe", "status", "-p", str(project), "--format", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert {r["kind"] for r in json.loads(result.stdout)} == {"source", "pipeline", "table"}


def test_set_flag_overrides_file_and_env(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICEFLOE__CATALOG", "sqlite:///from-env.db")
    invoke(capsys, "ingest", "-p", str(project), "--set", "catalog=sqlite:///from-flag.db", "--format", "json", str(_good(tmp_path)))
    assert (project / "from-flag.db").exists() and not (project / "from-env.db").exists()
    code, _, err = invoke(capsys, "status", "-p", str(project), "--set", "nokey")
    assert code == EXIT_USAGE and "SECTION.KEY=VALUE" in err

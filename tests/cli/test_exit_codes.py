"""Exit codes tell the truth: 3 when events were dead-lettered, 130 when stopped with work left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_DEAD
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project


def _good(folder: Path, name: str = "good.csv") -> Path:
    return csv_file(folder / name, "id,ts,amount", ["1,2026-01-01 00:00:00,2.50"])


def _bad(folder: Path, name: str = "bad.csv") -> Path:
    return csv_file(folder / name, "id,ts,amount", ["x,2026-01-01 00:00:00,1"])


def test_run_once_exits_3_when_files_were_dead_lettered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _good(root / "landing")
    _bad(root / "landing")
    code, _, err = invoke(capsys, "run", "-p", str(root), "--once")
    assert code == EXIT_DEAD and "committed 1, dead 1" in err and "rows 1" in err


def test_run_once_exits_0_when_everything_committed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    _good(root / "landing")
    code, _, err = invoke(capsys, "run", "-p", str(root), "--once")
    assert code == 0 and "committed 1, dead 0" in err and "rows 1" in err
    _bad(root / "landing")
    assert invoke(capsys, "run", "-p", str(root), "--once")[0] == EXIT_DEAD
    # a later run that dead-letters nothing is a success, whatever earlier runs left in the DLQ
    _good(root / "landing", "more.csv")
    code, _, err = invoke(capsys, "run", "-p", str(root), "--once")
    assert code == 0 and "committed 1, dead 0" in err and "rows 1" in err


def test_dlq_replay_now_exits_3_when_the_event_dies_again_and_0_once_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    code, _, _ = invoke(capsys, "ingest", "-p", str(root), str(_bad(tmp_path)))
    assert code == EXIT_DEAD
    (dead,) = Project(root).dead_letters()
    code, _, err = invoke(capsys, "dlq", "replay", "-p", str(root), "--now", dead.id)
    assert code == EXIT_DEAD and "committed 0, dead 1" in err
    # the config is fixed (id may be text): replayed and committed, exit 0
    make_project(root, {"orders": {**ORDERS, "read": {"format": "csv", "schema": {"id": "string"}}}})
    code, _, err = invoke(capsys, "dlq", "replay", "-p", str(root), "--now", dead.id)
    assert code == 0 and "committed 1, dead 0" in err


def test_dlq_replay_without_now_only_queues_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    invoke(capsys, "ingest", "-p", str(root), str(_bad(tmp_path)))
    code, _, err = invoke(capsys, "dlq", "replay", "-p", str(root), "--all")
    assert code == 0 and "replaying 1 event(s)" in err
    assert [e.state for e in Project(root).ledger.events()] == ["queued"]


def test_ingest_exits_3_when_a_file_is_dead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    assert invoke(capsys, "ingest", "-p", str(root), str(_good(tmp_path)))[0] == 0
    assert invoke(capsys, "ingest", "-p", str(root), str(_good(tmp_path, "g2.csv")), str(_bad(tmp_path)))[0] == EXIT_DEAD


def test_run_once_stopped_with_events_still_retrying_exits_130(tmp_path: Path) -> None:
    # the catalog is down and the next retry is far away: Ctrl-C leaves the event retrying
    retry = {"max_attempts": 5, "backoff": "1h", "max_backoff": "1h"}
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "retry": retry}}, catalog="sqlite:///icefloe.yaml/x/catalog.db")
    _good(root / "landing")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "icefloe", "run", "-p", str(root), "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(e.state == "retrying" for e in Project(root).ledger.events()):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # EXIT_INTERRUPTED, as README promises
    assert "retrying 1" in err

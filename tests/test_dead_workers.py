"""Issue 8 item 9: a worker killed with SIGKILL is noticed by a live worker on the same host within
seconds (not after the lease), and `status` shows every worker and the events a dead one held."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import main
from tests.helpers import ORDERS, make_project, wait_for

# a transform that holds the event while HOLD_FOR_TEST is set: the worker is busy with it
HOOKS = """
import os, time

def hold(batch):
    if os.environ.get("HOLD_FOR_TEST"):
        time.sleep(600)
    return batch
"""



@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A project whose one event is leased (for 10 minutes) by a worker subprocess busy with it."""
    pipeline = {**ORDERS, "transform": [{"python": "hooks:hold"}]}
    root = make_project(tmp_path / "p", {"orders": pipeline}, lease="10m")
    (root / "hooks.py").write_text(HOOKS)
    (root / "landing" / "a.csv").write_text("id,ts,amount\n1,2026-01-01 00:00:00,1.00\n")
    env = {**os.environ, "HOLD_FOR_TEST": "1", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "icefloe", "run", "-p", str(root)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        with Project(root) as project:
            owned = lambda: [e for e in project.ledger.events(states=["running"]) if f":{proc.pid}:" in (e.lease_owner or "")]
            assert wait_for(lambda: bool(owned())), (tmp_path / "worker.log").read_text()
        yield root, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def test_status_shows_each_worker_and_the_events_of_a_dead_one(held: tuple[Path, subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]) -> None:
    root, proc = held
    with Project(root) as project:
        (worker,) = [r for r in project.status() if r["kind"] == "worker"]
        assert (worker["host"], worker["pid"], worker["state"]) == (socket.gethostname(), proc.pid, "alive")
        assert worker["last_heartbeat"] is not None and worker["running"] == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    main(["status", "-p", str(root), "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    (worker,) = [r for r in rows if r["kind"] == "worker"]  # once: no worker rows at all
    assert worker["pid"] == proc.pid and worker["state"] == "dead" and worker["running"] == 1
    assert "landing:a.csv" in worker["orphaned"]
    main(["status", "-p", str(root)])
    assert "workers" in capsys.readouterr().out


def test_a_live_worker_takes_back_a_killed_workers_events_within_seconds(held: tuple[Path, subprocess.Popen[bytes]]) -> None:
    root, proc = held
    project = Project(root)
    stop = threading.Event()
    live = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    live.start()  # before the kill: its start-up check cannot be what frees the event
    try:
        mine = f":{os.getpid()}:"
        assert wait_for(lambda: any(mine in w.owner for w in project.ledger.workers()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # the lease has ten minutes left: only noticing the dead owner can free it this soon
        assert wait_for(lambda: [e.state for e in project.ledger.events()] == ["committed"], timeout=60)
    finally:
        stop.set()
        live.join(timeout=10)
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 1}]
    (event,) = project.ledger.events()
    assert mine in [s.detail.get("owner", "") for s in project.ledger.steps(event.id) if s.step == "leased"][-1]

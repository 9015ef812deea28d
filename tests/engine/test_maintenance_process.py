"""Maintenance in a child process of the worker (`maintenance.process`, the default): its runs
keep rows whole, fail as runs on the thread fail, never hold up a commit, and never outlive
the worker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.engine.maintenance import Maintenance
from icefloe.engine.maintenance_process import NICE
from icefloe.upkeep import JOB_KIND
from tests.helpers import ORDERS, csv_file, make_project, wait_for

EAGER = {"every_commits": 1, "keep_snapshots": 1, "compact_min_files": 2, "target_file_bytes": "1MB"}


def _project(root: Path, **maintenance: Any) -> Project:
    return Project(make_project(root, {"orders": {**ORDERS, "write": {"table": "sales.orders"}}}, maintenance={**EAGER, **maintenance}))


def _ingest(project: Project, n: int) -> None:
    path = csv_file(project.root.parent / "in" / f"f{n}.csv", "id,ts,amount", [f"{n},2026-01-01T00:00:00,{n}.25"])
    assert [e.state for e in project.ingest([path])] == ["committed"]


def _maintenance(project: Project) -> Maintenance:
    engine = project._ingest_engine
    assert engine is not None and engine.committer._maintenance is not None
    return engine.committer._maintenance


def _started(root: Path) -> tuple[Project, Maintenance, int]:
    """A project whose first ingest made a maintenance run due, which started the child; its pid."""
    project = _project(root)
    _ingest(project, 1)
    project.wait_for_maintenance()
    maintenance = _maintenance(project)
    pid = maintenance.process.pid  # type: ignore[union-attr]
    assert pid is not None
    return project, maintenance, pid


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has exited: only its parent's wait is missing


def test_runs_go_in_a_child_process_at_a_lower_priority_and_keep_every_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    project = _project(tmp_path / "p")
    with caplog.at_level(logging.INFO, logger="icefloe"):
        for n in range(6):
            _ingest(project, n)
        project.wait_for_maintenance()
        pid = _maintenance(project).process.pid  # type: ignore[union-attr]
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    jobs = project.ledger.jobs(kind=JOB_KIND, limit=100)
    assert jobs and {j.state for j in jobs} == {"succeeded"}
    assert sum(j.detail["files_compacted"] for j in jobs) > 0
    # the child's log lines reach this process's handlers
    assert any(r.getMessage().startswith("maintained sales.orders") for r in caplog.records)
    assert project.sql("select count(*) as n, sum(amount) as s from sales.orders").to_pylist() == [{"n": 6, "s": Decimal("16.50")}]
    project.close()
    assert _gone(pid)


@pytest.mark.parametrize("process", [True, False])
def test_a_failed_run_is_logged_and_recorded_as_on_the_thread(tmp_path: Path, caplog: pytest.LogCaptureFixture, process: bool) -> None:
    project = _project(tmp_path / "p", process=process)
    _ingest(project, 1)
    maintenance = Maintenance(project.runtime, "tester:1")
    assert (maintenance.process is not None) == process
    with caplog.at_level(logging.WARNING, logger="icefloe"):
        maintenance.submit(["sales.nope"])
        maintenance.wait()
    maintenance.close()
    assert "maintenance of sales.nope failed: no table 'sales.nope'" in caplog.text
    (job,) = project.ledger.jobs(kind=JOB_KIND, target="sales.nope")
    assert (job.state, job.error) == ("failed", "no table 'sales.nope'")
    project.close()


def test_commits_go_on_while_the_maintenance_process_cannot_run(tmp_path: Path) -> None:
    project, maintenance, pid = _started(tmp_path / "p")
    os.kill(pid, signal.SIGSTOP)  # the run the next commit makes due cannot even start
    try:
        started = time.monotonic()
        for n in range(2, 5):
            _ingest(project, n)
        assert maintenance.busy()
        assert time.monotonic() - started < 30
    finally:
        os.kill(pid, signal.SIGCONT)
    project.wait_for_maintenance()
    assert {j.state for j in project.ledger.jobs(kind=JOB_KIND, limit=100)} == {"succeeded"}
    project.close()


def test_a_killed_child_fails_its_run_and_the_next_run_starts_another(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    project, maintenance, first = _started(tmp_path / "p")
    os.kill(first, signal.SIGSTOP)
    with caplog.at_level(logging.WARNING, logger="icefloe"):
        _ingest(project, 2)  # its run is handed to the stopped child ...
        assert wait_for(maintenance.busy, timeout=10)
        os.kill(first, signal.SIGKILL)  # ... which dies before it answers
        project.wait_for_maintenance()
    assert "maintenance of sales.orders failed: the maintenance process exited during the run" in caplog.text
    _ingest(project, 3)
    project.wait_for_maintenance()
    second = maintenance.process.pid  # type: ignore[union-attr]
    assert second is not None and second != first
    assert project.ledger.jobs(kind=JOB_KIND, limit=1)[0].state == "succeeded"
    project.close()


def test_the_maintenance_process_dies_with_a_killed_worker(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "write": {"table": "sales.orders"}}}, maintenance=EAGER)
    csv_file(tmp_path / "in" / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00"])
    script = textwrap.dedent(f"""
        import os, sys, time
        from icefloe import Project
        project = Project({str(root)!r})
        project.ingest([{str(tmp_path / "in" / "a.csv")!r}])
        project.wait_for_maintenance()
        print(project._ingest_engine.committer._maintenance.process.pid, flush=True)
        time.sleep(60)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        # stopped, it cannot notice its pipe closing: only the kernel's parent-death signal ends it
        os.kill(child, signal.SIGSTOP)
        worker.kill()
        worker.wait(30)
        assert wait_for(lambda: _gone(child), timeout=15), "the maintenance process outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
        if child and not _gone(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the nice value is per thread on Linux only")
def test_what_runs_under_the_commit_gate_keeps_the_workers_priority() -> None:
    """The committer waits while the child holds the gate: the gated attempt must not run at the
    child's lower priority, which an unprivileged process cannot take back (RLIMIT_NICE)."""
    from concurrent.futures import ThreadPoolExecutor
    from multiprocessing import Pipe

    from pyiceberg.utils.concurrent import ExecutorFactory

    from icefloe.engine.maintenance_process import _Gate
    from icefloe.lake.maintain_compact import run_exclusive

    parent, child = Pipe()
    heard: list[object] = []

    def committer() -> None:  # the parent's side of the gate: grant each request
        while (message := parent.recv()) != ("stop",):
            heard.append(message)
            if message == ("gate",):
                parent.send(("granted",))

    serving = threading.Thread(target=committer)
    serving.start()
    found: dict[str, int] = {}

    def maintenance_child() -> None:  # as child_main: the gate first, then the lower priority
        gate = _Gate(child)
        base = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, base + NICE)  # this thread only, on Linux
        found["run"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        # as in the child, whose planning started pyiceberg's shared pool from this (niced) thread
        started = ThreadPoolExecutor(max_workers=2)
        started.submit(lambda: None).result()
        ExecutorFactory._instance, ExecutorFactory._instance_pid = started, os.getpid()
        found["gated"] = run_exclusive(gate, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        # pyiceberg's shared pool (manifest reads and writes), used under the gate, at that priority too
        found["pool"] = run_exclusive(
            gate, lambda: ExecutorFactory.get_or_create().submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
        )
        found["base"] = base
        ExecutorFactory._instance = None
        started.shutdown()
        child.send(("stop",))

    worker = threading.Thread(target=maintenance_child)
    worker.start()
    worker.join(30)
    serving.join(30)
    assert found["run"] == min(19, found["base"] + NICE)  # the run itself yields the CPU ...
    assert found["gated"] == found["pool"] == found["base"]  # ... not what the committer is waiting for
    assert heard == [("gate",), ("ungate",)] * 2

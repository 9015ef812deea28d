"""`icefloe serve` runs its worker in a child process (web/worker_process.py): not in the API's
process, supervised (a dead one is logged and replaced), stopped cleanly with serve, and never
left behind when serve dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from tests.web.apiproject import api_project, bearer

NDJSON = b'{"id": 7, "page": "/x"}\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serving(root: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "icefloe", "serve", "-p", str(root), "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text(errors="replace")[-2000:]
                time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _workers(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "icefloe.web.worker_process" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _one_worker(pid: int, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while not (found := _workers(pid)):
        assert time.monotonic() < deadline, "serve started no worker process"
        time.sleep(0.1)
    (worker,) = found
    return worker


def _post(port: int, *, wait: bool = True) -> tuple[int, dict[str, Any]]:
    query = "?wait=commit" if wait else ""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/records/clicks{query}", data=NDJSON,
                                     headers=bearer(), method="POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as answer:
        return answer.status, json.loads(answer.read())


def _scrape(port: int) -> str:
    scrape = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=bearer("reader"))
    with urllib.request.urlopen(scrape, timeout=30) as answer:
        return str(answer.read().decode())


def test_the_worker_is_a_child_process_and_commits(tmp_path: Path) -> None:
    with _serving(api_project(tmp_path / "p"), tmp_path / "serve.log") as (proc, port):
        worker = _one_worker(proc.pid)
        assert worker.pid != proc.pid
        status, body = _post(port)
        assert status == 200 and body["events"][0]["state"] == "committed"
        # /metrics is the child's scrape: the commit it made is counted there
        text = _scrape(port)
        assert "icefloe_serve_worker_restarts_total 0.0" in text
        assert 'icefloe_events_committed_total{pipeline="clicks",table="raw.clicks"} 1.0' in text, text[:3000]


def test_a_killed_worker_process_is_logged_and_replaced(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with _serving(api_project(tmp_path / "p"), log) as (proc, port):
        first = _one_worker(proc.pid)
        first.kill()
        first.wait(30)
        deadline = time.monotonic() + 60
        while not [w for w in _workers(proc.pid) if w.pid != first.pid]:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
        assert f"the worker process (pid {first.pid}) exited with code -9 while serve was running" in log.read_text()
        status, body = _post(port)  # the new one commits
        assert status == 200 and body["events"][0]["state"] == "committed"
        text = _scrape(port)
        assert "icefloe_serve_worker_restarts_total 1.0" in text and "icefloe_serve_worker_up 1.0" in text


def test_sigterm_stops_the_worker_process_and_serve_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with _serving(api_project(tmp_path / "p"), log) as (proc, port):
        worker = _one_worker(proc.pid)
        assert _post(port, wait=False)[0] == 202
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text(errors="replace")[-2000:]
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    text = log.read_text()
    assert f"worker process {worker.pid} stopped:" in text  # it flushed and signed off
    assert "exited with code" not in text


def test_the_worker_process_does_not_outlive_a_killed_serve(tmp_path: Path) -> None:
    with _serving(api_project(tmp_path / "p"), tmp_path / "serve.log") as (proc, _):
        worker = _one_worker(proc.pid)
        proc.kill()
        proc.wait()
    worker.wait(60)  # psutil.TimeoutExpired if it stayed

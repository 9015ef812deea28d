"""`icefloe serve` runs a worker beside the API (so ?wait=commit completes on one host) unless
--no-worker; the worker stops when the server does."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from tests.cli.invoke import invoke
from tests.web.apiproject import api_project, bearer

NDJSON = b'{"id": 7, "page": "/x"}\n'


def _serving(answers: list[Any]) -> Any:
    """Stands in for uvicorn.run: one request against the app it was given, then return (a stop)."""

    def run(app: Any, **_: Any) -> None:
        answers.append(TestClient(app).post("/v1/records/clicks?wait=commit", content=NDJSON, headers=bearer()))

    return run


def test_serve_commits_with_its_own_worker_and_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = api_project(tmp_path / "p")
    answers: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", _serving(answers))
    code, _, err = invoke(capsys, "serve", "-p", str(root))
    assert code == 0, err
    assert answers[0].status_code == 200 and answers[0].json()["events"][0]["state"] == "committed"
    assert not [t for t in threading.enumerate() if t.name == "icefloe-worker"]


def test_no_worker_leaves_the_commit_to_another_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = api_project(tmp_path / "p", wait_timeout="300ms")
    answers: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", _serving(answers))
    code, _, err = invoke(capsys, "serve", "-p", str(root), "--no-worker")
    assert code == 0, err
    # accepted and durable, not committed: 202 with where the event is
    assert answers[0].status_code == 202 and answers[0].json()["committed"] is False
    assert answers[0].json()["events"][0]["state"] == "queued"


def test_sigterm_stops_serve_cleanly_through_its_worker_shutdown(tmp_path: Path) -> None:
    # uvicorn raises SIGTERM again after its own shutdown: that must not end the process before
    # serve stops its worker and says how its landings shared ledger commits
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = api_project(tmp_path / "p")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    proc = subprocess.Popen([sys.executable, "-m", "icefloe", "serve", "-p", str(root), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.1)
        post = urllib.request.Request(f"http://127.0.0.1:{port}/v1/records/clicks", data=NDJSON, headers=bearer(), method="POST")
        with urllib.request.urlopen(post, timeout=30) as answer:
            assert answer.status == 202
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert b"ingest API: 1 landings in 1 ledger commits" in out

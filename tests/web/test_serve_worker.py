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

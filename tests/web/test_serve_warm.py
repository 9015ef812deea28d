"""`icefloe serve` opens the ledger and the catalog, loads the tables and compiles the pages before
it listens: a fresh server's first overview took 1.4 s (SQLite) and 5.6 s (PostgreSQL) on a busy
machine, all of it imports and opening the catalog. What it warmed keeps no answer: the first
request after a change shows the change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from icefloe.web.dashboard import common
from tests.cli.invoke import invoke
from tests.web.dashboard_project import build


def _committed(page: str) -> str:
    found = re.search(r'<tr data-pipeline="orders">.*?data-field="committed">(\d+)<', page, re.DOTALL)
    assert found, page
    return found[1]


def test_serve_is_warm_before_it_listens_and_its_first_overview_is_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dash = build(tmp_path)
    seen: dict[str, Any] = {}

    def run(app: Any, **_: Any) -> None:  # stands in for uvicorn.run: the moment the port is bound
        project = app.state.project
        opened = project.runtime.__dict__
        seen["opened"] = {"ledger" in opened, "catalog" in opened}
        seen["templates"] = {key[1] for key in common._env.cache} if common._env.cache is not None else set()
        # the outage is over: replaying its event commits it, and the first page shows it
        project.replay([dash.outage])
        project.run(once=True)
        client = TestClient(app, headers={"Authorization": f"Bearer {dash.tokens['reader']}"})
        seen["committed"] = _committed(client.get("/ui/").text)

    monkeypatch.setattr(uvicorn, "run", run)
    code, _, err = invoke(capsys, "serve", "-p", str(dash.root), "--no-worker")
    assert code == 0, err
    assert seen["opened"] == {True}
    assert {"overview.html", "events.html", "dlq.html", "tables.html"} <= seen["templates"]
    assert seen["committed"] == "3"


def test_a_catalog_that_is_down_at_start_does_not_stop_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dash = build(tmp_path)
    pages: list[str] = []

    def run(app: Any, **_: Any) -> None:
        client = TestClient(app, headers={"Authorization": f"Bearer {dash.tokens['reader']}"})
        pages.append(client.get("/ui/").text)

    monkeypatch.setattr(uvicorn, "run", run)
    down = "catalog=postgresql://nobody@127.0.0.1:1/nothing"
    code, _, err = invoke(capsys, "serve", "-p", str(dash.root), "--no-worker", "--set", down)
    assert code == 0, err
    assert "unavailable" in pages[0] and _committed(pages[0]) == "2"

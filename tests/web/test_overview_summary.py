"""The overview counts the ledger on every request: it never shows an older count."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.web.app import create_app
from icefloe.web.dashboard import summary as summary_module
from tests.web.dashboard_project import build


def _committed(page: str) -> str:
    found = re.search(r'<tr data-pipeline="orders">.*?data-field="committed">(\d+)<', page, re.DOTALL)
    assert found, page
    return found[1]


def test_a_cheap_count_is_live_on_every_request(tmp_path: Path) -> None:
    dash = build(tmp_path)
    with Project(dash.root) as p:
        client = TestClient(create_app(p), headers={"Authorization": f"Bearer {dash.tokens['reader']}"})
        assert _committed(client.get("/ui/").text) == "2"
        p.replay([dash.outage])
        p.run(once=True)
        page = client.get("/ui/").text
        assert _committed(page) == "3" and 'id="as-of"' not in page


def test_a_slow_count_is_still_made_on_every_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # it used to show an older count once counting took over 0.25 s (a fresh server's first
    # count always did): every request must show the ledger as it is when asked
    dash = build(tmp_path)
    slow_status = summary_module.status

    def slow(rt: Any) -> Any:
        time.sleep(0.3)
        return slow_status(rt)

    monkeypatch.setattr(summary_module, "status", slow)
    with Project(dash.root) as p:
        client = TestClient(create_app(p), headers={"Authorization": f"Bearer {dash.tokens['reader']}"})
        assert _committed(client.get("/ui/").text) == "2"
        p.replay([dash.outage])
        p.run(once=True)
        page = client.get("/ui/").text
        assert _committed(page) == "3" and 'id="as-of"' not in page

"""The overview counts live while counting is cheap; once it is not, it shows the last count,
says how old it is, and counts again in the background (one thread, never on the request)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.web.app import create_app
from icefloe.web.dashboard import summary as summary_module
from icefloe.web.dashboard.summary import Summaries
from tests.helpers import wait_for
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


def test_a_costly_count_is_shown_with_its_age_and_made_again_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dash = build(tmp_path)
    monkeypatch.setattr(summary_module, "LIVE_BUDGET", -1.0)  # every count is "too slow"
    with Project(dash.root) as p:
        client = TestClient(create_app(p), headers={"Authorization": f"Bearer {dash.tokens['reader']}"})
        first = client.get("/ui/").text
        assert _committed(first) == "2" and 'id="as-of"' in first and "counted again in the background" in first
        p.replay([dash.outage])
        p.run(once=True)
        # young enough: the last count is shown as it was, without counting again
        assert _committed(client.get("/ui/").text) == "2"
        monkeypatch.setattr(summary_module, "MAX_AGE", 0.0)
        summaries: Summaries = client.app.state.overview  # type: ignore[attr-defined]
        made = summaries.get().made_at
        time.sleep(0.01)
        assert wait_for(lambda: summaries.get().made_at > made, timeout=30)
        assert _committed(client.get("/ui/").text) == "3"

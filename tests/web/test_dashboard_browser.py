"""The dashboard in a real browser: Debian's chromium driven by Playwright against `icefloe
serve`'s app on a loopback port (uvicorn, as the command runs it).

Marked `browser`: they fail (not skip) under CI=true when chromium or playwright is missing.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.web.app import create_app
from tests.web.dashboard_project import Dashboard, build

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing and CI=true (.ci/run installs chromium: apt-get install -y chromium)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Served:
    def __init__(self, dash: Dashboard) -> None:
        import uvicorn

        self.dash = dash
        self.project = Project(dash.root)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(self.project), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.project.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # one project for the module (building it is most of the time): the replay test, which
    # changes it, runs last, and the others compare with what the ledger holds when they look
    running = Served(build(tmp_path_factory.mktemp("dash")))
    yield running
    running.stop()


def _sign_in(browser: Any, served: Served, token: str, path: str = "/ui/") -> Any:
    page = browser.new_page()
    page.goto(served.url + path)
    assert "/ui/login" in page.url  # sent to sign in first
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(served.url + path) + "$"))
    return page


def test_an_unauthenticated_request_is_refused(browser: Any, served: Served) -> None:
    page = browser.new_page()
    answer = page.goto(served.url + "/ui/dlq")
    assert answer is not None and "/ui/login?next=%2Fui%2Fdlq" in page.url
    assert page.locator("#pipelines").count() == 0 and page.locator("#dead").count() == 0
    page.fill("#token", "ifl_not-a-token")
    page.click("#sign-in")
    assert "not one of" in page.inner_text("#login-error")
    assert page.context.cookies() == []
    page.close()


def test_the_overview_shows_the_numbers_the_ledger_has(browser: Any, served: Served) -> None:
    page = _sign_in(browser, served, served.dash.tokens["reader"])
    counts = {(g.pipeline, g.state): g.events for g in served.project.ledger.counts()}
    row = page.locator('tr[data-pipeline="orders"]')
    assert row.locator('[data-field="committed"]').inner_text() == str(counts[("orders", "committed")])
    assert row.locator('[data-field="dead"]').inner_text() == str(counts[("orders", "dead")])
    assert row.locator('[data-field="committed_hour"]').inner_text() == str(counts[("orders", "committed")])
    (table,) = served.project.tables()
    assert page.locator('tr[data-table="sales.orders"] [data-field="rows"]').inner_text() == str(table["rows"])
    assert page.locator("svg.chart").count() >= 3
    cookie = next(c for c in page.context.cookies() if c["name"] == "icefloe_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # script cannot read the session
    page.close()


def test_the_trace_page_shows_every_step(browser: Any, served: Served) -> None:
    (event,) = [e for e in served.project.ledger.page(states=["committed"], limit=10) if e.key == "a.csv"]
    steps = [s.step for s in served.project.ledger.steps(event.id)]
    page = _sign_in(browser, served, served.dash.tokens["reader"], f"/ui/events/{event.id}")
    shown = [el.get_attribute("data-step") for el in page.locator("#steps tr[data-step]").all()]
    assert shown == steps and {"landed", "leased", "read", "staged", "commit", "committed"} <= set(shown)
    assert page.locator("svg.timeline rect").count() == len(steps)
    assert page.inner_text("#rows") == "2 / 2 / 0"
    page.close()


def test_the_sql_console_refuses_file_access(browser: Any, served: Served) -> None:
    page = _sign_in(browser, served, served.dash.tokens["reader"], "/ui/sql")
    page.fill("#sql", "select * from read_csv('/etc/passwd')")
    page.click("#run")
    page.wait_for_selector("#sql-error")
    assert "Permission Error" in page.inner_text("#sql-error")
    assert "root:" not in page.content()
    page.fill("#sql", "select count(*) as n from sales.orders")
    page.click("#run")
    page.wait_for_selector("#result")
    assert page.inner_text("#result td") == "3"
    page.close()


def test_a_dead_event_is_replayed_from_the_page_and_commits(browser: Any, served: Served) -> None:
    dash = served.dash
    page = _sign_in(browser, served, dash.tokens["ops"], "/ui/dlq")
    page.check(f'tr[data-event="{dash.outage}"] input[type=checkbox]')
    page.click("#replay")
    page.wait_for_selector("#done")
    assert page.inner_text("#done") == "replayed 1 of 1."
    assert page.locator(f'tr[data-event="{dash.outage}"]').count() == 0
    with Project(dash.root) as worker:
        worker.run(once=True)
    page.goto(f"{served.url}/ui/events/{dash.outage}")
    assert page.inner_text("#state") == "committed"
    assert "sales.orders @" in page.inner_text("#snapshot")
    page.close()

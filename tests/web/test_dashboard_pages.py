"""Every dashboard page through Starlette's TestClient: what it shows is what the ledger and the
catalog hold, and nobody without a token sees any of it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.web.app import create_app
from icefloe.web.dashboard import events as events_page
from tests.web.dashboard_project import Dashboard, build

PAGES = ["/ui/", "/ui/events", "/ui/events?state=dead", "/ui/dlq", "/ui/tables", "/ui/tables/sales.orders",
         "/ui/lineage?table=sales.orders", "/ui/lineage?object=a.csv", "/ui/sql", "/ui/events/a.csv"]  # fmt: skip


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    # one project for the module: these tests only read it
    return build(tmp_path_factory.mktemp("dash"))


@pytest.fixture
def client(dash: Dashboard) -> Iterator[TestClient]:
    with Project(dash.root) as project:
        yield TestClient(create_app(project), follow_redirects=False)


def _as(client: TestClient, token: str) -> TestClient:
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _cell(html: str, row_attr: str, field: str) -> str:
    row = re.search(rf'<tr {row_attr}>(.*?)</tr>', html, re.DOTALL)
    assert row, html
    cell = re.search(rf'data-field="{field}">([^<]*)<', row[1])
    assert cell, row[1]
    return cell[1].strip()


@pytest.mark.parametrize("path", PAGES)
def test_without_a_token_every_page_sends_the_browser_to_sign_in(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=%2Fui")
    # a wrong token is no better than none
    assert _as(client, "ifl_nope").get(path).status_code == 303


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_reader(client: TestClient, dash: Dashboard, path: str) -> None:
    answer = _as(client, dash.tokens["reader"]).get(path)
    assert answer.status_code == 200, answer.text
    assert "script" not in answer.text.lower()  # no JavaScript anywhere
    assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_the_overview_shows_what_the_ledger_counts(client: TestClient, dash: Dashboard) -> None:
    page = _as(client, dash.tokens["reader"]).get("/ui/").text
    row = 'data-pipeline="orders"'
    assert _cell(page, row, "committed") == "2"
    assert re.search(r'<a class="bad" href="/ui/dlq">2</a>', page)  # the two dead
    assert _cell(page, row, "committed_hour") == "2"
    assert _cell(page, row, "rows_hour") == "3"
    assert _cell(page, row, "failed_hour") == "2"
    assert _cell(page, 'data-table="sales.orders"', "rows") == "3"
    assert "last error: catalog unreachable" in page  # the dead event updated last
    assert page.count("<svg") >= 3


def test_login_sets_an_httponly_strict_cookie_and_goes_back(client: TestClient, dash: Dashboard) -> None:
    form = client.get("/ui/login?next=/ui/dlq")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
    assert csrf
    wrong = client.post("/ui/login", data={"csrf": csrf[1], "token": "ifl_wrong", "next": "/ui/dlq"})
    assert wrong.status_code == 401 and "not one of" in wrong.text and "icefloe_session" not in wrong.headers.get("set-cookie", "")
    answer = client.post("/ui/login", data={"csrf": csrf[1], "token": dash.tokens["reader"], "next": "/ui/dlq"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/dlq"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/ui/dlq").status_code == 200  # the cookie is the session now
    # a login link cannot send anyone off the dashboard (signed out again: the CSRF token is the session's)
    client.cookies.clear()
    elsewhere = client.post("/ui/login", data={"csrf": csrf[1], "token": dash.tokens["reader"], "next": "https://evil.example/"})
    assert elsewhere.headers["location"] == "/ui/"


def test_login_without_its_csrf_token_is_refused(client: TestClient, dash: Dashboard) -> None:
    answer = client.post("/ui/login", data={"token": dash.tokens["reader"]})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_events_filter_by_state_and_page_through_all(client: TestClient, dash: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    _as(client, dash.tokens["reader"])
    dead = client.get("/ui/events?state=dead").text
    assert re.search(r'<span id="total">2</span>', dead)
    assert dash.bad[:12] in dead and dash.outage[:12] in dead
    committed = client.get("/ui/events?state=committed").text
    assert dash.bad[:12] not in committed and '<span id="total">2</span>' in committed
    assert '<span id="total">0</span>' in client.get("/ui/events?since=2999-01-01T00:00").text
    assert client.get("/ui/events?state=nope").status_code == 400
    assert client.get("/ui/events?since=yesterday").status_code == 400
    # two a page: the older link walks every event once, newest first
    monkeypatch.setattr(events_page, "PAGE", 2)
    seen: list[str] = []
    url: str | None = "/ui/events"
    while url:
        page = client.get(url).text
        seen += re.findall(r'href="/ui/events/([0-9a-f]+)"', page)
        more = re.search(r'id="older" href="([^"]+)"', page)
        url = more[1].replace("&amp;", "&") if more else None
    with Project(dash.root) as p:
        everything = [e.id for e in p.ledger.page(limit=100)]
    assert seen == list(reversed(everything))


def test_one_event_shows_every_step_rows_and_snapshot(client: TestClient, dash: Dashboard) -> None:
    with Project(dash.root) as p:
        (event,) = [e for e in p.ledger.page(states=["committed"], limit=10) if e.key == "a.csv"]
        steps = [s.step for s in p.ledger.steps(event.id)]
    page = _as(client, dash.tokens["reader"]).get(f"/ui/events/{event.id}").text
    shown = re.findall(r'<tr data-step="([^"]+)">', page)
    assert shown == steps
    assert shown[:3] == ["landed", "leased", "read"] and shown[-2:] == ["commit", "committed"] and "staged" in shown
    assert re.search(r'id="rows">2 / 2 / 0<', page)
    assert f"sales.orders @ {event.snapshot_id}" in page


def test_a_dead_event_shows_its_error_with_file_and_line(client: TestClient, dash: Dashboard) -> None:
    page = _as(client, dash.tokens["reader"]).get(f"/ui/events/{dash.bad}").text
    error = re.search(r'<pre class="error" id="error">([^<]*)</pre>', page)
    assert error and error[1].startswith("landing:bad.csv:2: column &#39;id&#39;")
    assert "Replay" not in page  # a reader gets no buttons
    assert "Replay" in _as(client, dash.tokens["ops"]).get(f"/ui/events/{dash.bad}").text


def test_an_unknown_event_is_404(client: TestClient, dash: Dashboard) -> None:
    answer = _as(client, dash.tokens["reader"]).get("/ui/events/no-such-file.csv")
    assert answer.status_code == 404 and "no event" in answer.text


def test_a_table_shows_schema_snapshots_health_and_travels_in_time(client: TestClient, dash: Dashboard) -> None:
    _as(client, dash.tokens["reader"])
    with Project(dash.root) as p:
        history = p.history("sales.orders")
    page = client.get("/ui/tables/sales.orders").text
    schema = re.search(r'<table id="schema">(.*?)</table>', page, re.DOTALL)
    assert schema and [c for c in ("id", "ts", "amount") if f"<td>{c}</td>" in schema[1]] == ["id", "ts", "amount"]
    for snap in history:
        assert str(snap["snapshot_id"]) in page
        assert all(e[:12] in page for e in snap["events"])
    assert "data files" in page and "last maintenance" in page
    preview = re.search(r'<table id="preview">(.*?)</table>', page, re.DOTALL)
    assert preview and preview[1].count("<tr>") == 1 + 3  # the header and three rows
    first = client.get(f"/ui/tables/sales.orders?as_of={history[0]['snapshot_id']}").text
    old = re.search(r'<table id="preview">(.*?)</table>', first, re.DOTALL)
    assert old and old[1].count("<tr>") == 1 + 2  # a.csv's two rows only
    assert client.get("/ui/tables/nope.nothing").status_code == 404
    assert "no snapshot" in client.get("/ui/tables/sales.orders?as_of=12345").text


def test_lineage_goes_from_object_to_table_and_back(client: TestClient, dash: Dashboard) -> None:
    _as(client, dash.tokens["reader"])
    with Project(dash.root) as p:
        (event,) = [e for e in p.ledger.page(states=["committed"], limit=10) if e.key == "b.csv"]
    by_object = client.get("/ui/lineage?object=b.csv").text
    row = re.search(r'<table id="object-lineage">(.*?)</table>', by_object, re.DOTALL)
    assert row and event.id[:12] in row[1] and str(event.snapshot_id) in row[1] and "sales.orders" in row[1]
    by_table = client.get("/ui/lineage?table=sales.orders").text
    assert "landing:b.csv" in by_table and "landing:a.csv" in by_table and str(event.snapshot_id) in by_table
    assert "landing:bad.csv" not in by_table

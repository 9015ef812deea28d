"""The dashboard's POSTs: dead-letter replay and discard (operate scope, CSRF token) and the SQL
console, which is read-only for real (DuckDB refuses file access, not a text filter)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.errors import IcefloeError
from icefloe.query.readonly import ReadOnlyQueryError, read_only_query
from icefloe.web.app import create_app
from tests.web.dashboard_project import Dashboard, build


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    """One project for the tests that change nothing in it (a refused post, a query)."""
    return build(tmp_path_factory.mktemp("dash"))


@pytest.fixture
def own_dash(tmp_path: Path) -> Dashboard:
    """A project of the test's own, for a replay or a discard."""
    return build(tmp_path)


def _client(dash: Dashboard) -> Iterator[TestClient]:
    with Project(dash.root) as project:
        yield TestClient(create_app(project), follow_redirects=False)


@pytest.fixture
def client(dash: Dashboard) -> Iterator[TestClient]:
    yield from _client(dash)


@pytest.fixture
def own_client(own_dash: Dashboard) -> Iterator[TestClient]:
    yield from _client(own_dash)


def _signed_in(client: TestClient, token: str) -> str:
    """Sign in through the form; returns the CSRF token of the session's forms."""
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
    assert csrf
    assert client.post("/ui/login", data={"csrf": csrf[1], "token": token}).status_code == 303
    page = client.get("/ui/dlq")
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found
    return found[1]


def _state(dash: Dashboard, id: str) -> str:
    with Project(dash.root) as p:
        return p.event(id).state


def test_replay_from_the_page_queues_the_event_and_a_run_commits_it(own_client: TestClient, own_dash: Dashboard) -> None:
    client, dash = own_client, own_dash
    csrf = _signed_in(client, dash.tokens["ops"])
    answer = client.post("/ui/dlq", data={"csrf": csrf, "action": "replay", "id": dash.outage})
    assert answer.status_code == 303 and "replayed+1+of+1" in answer.headers["location"]
    assert _state(dash, dash.outage) == "queued"
    assert "replayed 1 of 1" in client.get(answer.headers["location"]).text
    with Project(dash.root) as p:
        p.run(once=True)
        assert p.event(dash.outage).state == "committed"
    assert dash.outage[:12] not in client.get("/ui/dlq").text


def test_discard_from_the_page(own_client: TestClient, own_dash: Dashboard) -> None:
    client, dash = own_client, own_dash
    csrf = _signed_in(client, dash.tokens["ops"])
    answer = client.post("/ui/dlq", data={"csrf": csrf, "action": "discard", "id": [dash.bad, dash.outage]})
    assert answer.status_code == 303
    assert (_state(dash, dash.bad), _state(dash, dash.outage)) == ("discarded", "discarded")
    assert 'id="empty"' in client.get("/ui/dlq").text


def test_a_post_without_the_csrf_token_changes_nothing(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["ops"])
    # one hex digit changed, whatever it was: setting the last one to "0" left a token ending in
    # "0" (1 in 16) as it was, and that post was rightly accepted (the test failed 1 run in 16)
    wrong = csrf[:-1] + ("1" if csrf.endswith("0") else "0")
    for data in ({"action": "replay", "id": dash.bad}, {"csrf": wrong, "action": "replay", "id": dash.bad}):
        answer = client.post("/ui/dlq", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
    # the CSRF token is the session's: another token's session has another
    other = TestClient(client.app, follow_redirects=False)
    assert _signed_in(other, dash.tokens["reader"]) != csrf
    assert _state(dash, dash.bad) == "dead"


def test_a_form_posted_from_another_site_is_refused(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["ops"])
    evil = {"Origin": "https://evil.example"}
    assert client.post("/ui/dlq", data={"csrf": csrf, "action": "replay", "id": dash.bad}, headers=evil).status_code == 403
    assert _state(dash, dash.bad) == "dead"
    client.cookies.clear()
    form = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui/login").text)
    assert form
    login = client.post("/ui/login", data={"csrf": form[1], "token": dash.tokens["ops"]}, headers=evil)
    assert login.status_code == 403 and "set-cookie" not in login.headers
    same = client.post("/ui/login", data={"csrf": form[1], "token": dash.tokens["ops"]}, headers={"Origin": "http://testserver"})
    assert same.status_code == 303


def test_a_reader_cannot_replay_or_discard(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["reader"])
    page = client.get("/ui/dlq").text
    assert 'id="replay"' not in page and "operate" in page
    answer = client.post("/ui/dlq", data={"csrf": csrf, "action": "replay", "id": dash.bad})
    assert answer.status_code == 403 and "lacks scope" in answer.text
    assert _state(dash, dash.bad) == "dead"
    # and nobody without a session may post at all
    client.cookies.clear()
    assert client.post("/ui/dlq", data={"action": "replay", "id": dash.bad}).status_code == 303


def test_bad_actions_are_400(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["ops"])
    assert client.post("/ui/dlq", data={"csrf": csrf, "action": "delete", "id": dash.bad}).status_code == 400
    assert client.post("/ui/dlq", data={"csrf": csrf, "action": "replay"}).status_code == 400
    assert client.post("/ui/dlq", data={"csrf": csrf, "action": "replay", "id": "ffffffffff"}).status_code == 404


def test_sign_out_ends_the_session(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["reader"])
    answer = client.post("/ui/logout", data={"csrf": csrf})
    assert answer.status_code == 303 and 'icefloe_session=""' in answer.headers["set-cookie"]
    client.cookies.clear()  # what the browser does with the expired cookie
    assert client.get("/ui/").status_code == 303


def test_the_console_runs_a_select_over_the_tables_and_the_ledger(client: TestClient, dash: Dashboard) -> None:
    csrf = _signed_in(client, dash.tokens["reader"])
    answer = client.post("/ui/sql", data={"csrf": csrf, "sql": "select sum(amount) as total from sales.orders"})
    assert answer.status_code == 200 and "<td>6.50</td>" in answer.text
    answer = client.post("/ui/sql", data={"csrf": csrf, "sql": "select count(*) as n from icefloe.events where state = 'dead'"})
    assert "<td>2</td>" in answer.text
    assert client.post("/ui/sql", data={"sql": "select 1"}).status_code == 403  # no CSRF token


@pytest.mark.parametrize("sql, says", [
    ("select * from read_csv('/etc/passwd')", "Permission Error"),
    ("select * from read_text('/etc/hostname')", "Permission Error"),
    ("select * from glob('/*')", "Permission Error"),
    ("copy (select 1) to '/tmp/icefloe-console-copy.csv'", "only SELECT"),
    ("attach '/tmp/icefloe-console.db' as x", "only SELECT"),
    ("install httpfs", "only SELECT"),
    ("set enable_external_access = true", "only SELECT"),
    ("select 1; select 2", "one statement"),
])  # fmt: skip
def test_the_console_refuses_file_access_and_anything_but_one_select(
    client: TestClient, dash: Dashboard, sql: str, says: str
) -> None:
    csrf = _signed_in(client, dash.tokens["reader"])
    answer = client.post("/ui/sql", data={"csrf": csrf, "sql": sql})
    assert answer.status_code == 400 and says in answer.text, answer.text
    assert not Path("/tmp/icefloe-console-copy.csv").exists() and not Path("/tmp/icefloe-console.db").exists()


def test_a_select_cannot_read_a_file_even_next_to_the_tables(dash: Dashboard) -> None:
    with Project(dash.root) as p:
        # a data file the view of sales.orders reads is allowed only to that view's query
        path = p.catalog.load_table("sales.orders").inspect.files().column("file_path")[0].as_py().removeprefix("file://")
        with pytest.raises(ReadOnlyQueryError, match="Permission Error"):
            read_only_query(p.runtime, f"select * from read_parquet('{path}')")
        with pytest.raises(ReadOnlyQueryError, match="Permission Error"):
            read_only_query(p.runtime, f"select * from sales.orders, read_csv('{dash.root / 'icefloe.yaml'}')")
        # the same queries do read through `icefloe sql` (not locked down): so the refusal is the console's
        assert p.sql(f"select count(*) as n from read_parquet('{path}')").column("n")[0].as_py() >= 1


def test_the_console_cuts_rows_at_the_limit_and_stops_slow_queries(dash: Dashboard) -> None:
    with Project(dash.root) as p:
        cut = read_only_query(p.runtime, "select * from range(10)", limit=3)
        assert cut.table.num_rows == 3 and cut.truncated
        whole = read_only_query(p.runtime, "select * from range(3)", limit=3)
        assert whole.table.num_rows == 3 and not whole.truncated
        with pytest.raises(ReadOnlyQueryError, match="took longer than 0.2 s"):
            read_only_query(p.runtime, "select count(*) from range(1000000000000) a", timeout=0.2)
        with pytest.raises(IcefloeError):
            read_only_query(p.runtime, "select * from no_such.table")

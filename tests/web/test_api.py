"""The HTTP ingest API: records and uploads land durably as events; wait=commit; idempotency keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.ledger.idempotency import IdempotencyStore
from icefloe.web.app import create_app
from icefloe.web.ingest import Ingestor, parse_records
from tests.web.apiproject import api_project, bearer, files_under, worker


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project(api_project(tmp_path / "p")) as p:
        yield p


@pytest.fixture
def client(project: Project) -> TestClient:
    return TestClient(create_app(project))


def _store(client: TestClient) -> IdempotencyStore:
    ing = Ingestor(client.app.state.project)  # type: ignore[attr-defined]
    client.app.state.ingestor = ing  # type: ignore[attr-defined]
    return ing.idempotency


NDJSON = b'{"id": 1, "page": "/a"}\n{"id": 2, "page": "/b"}\n'


def test_records_land_as_one_hidden_ndjson_object_and_one_queued_event(project: Project, client: TestClient) -> None:
    answer = client.post("/v1/records/clicks", content=NDJSON, headers={**bearer(), "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["rows"] == 2 and len(body["events"]) == 1
    event = project.ledger.get(body["events"][0]["id"])
    assert event is not None and event.state == "queued" and event.pipeline == "clicks"
    source = project.sources["landing"]
    assert event.key.startswith(".icefloe-records/clicks/")
    with source.open(event.key) as fh:
        assert fh.read() == NDJSON
    # the dot-folder keeps listings (reconcile) and routes off it: only the API's event routes it
    assert source.list().refs == []


def test_a_json_array_is_rewritten_as_ndjson() -> None:
    batch = parse_records(b'[{"id": 1}, {"id": 2, "page": "\xc3\xa9"}]', "application/json")
    assert batch.rows == 2
    assert [json.loads(line) for line in batch.data.splitlines()] == [{"id": 1}, {"id": 2, "page": "é"}]


def test_an_upload_lands_on_the_source_and_routes_like_any_object(project: Project, client: TestClient) -> None:
    data = b'{"n": 1}\n' * 50_000  # bigger than one write piece of the stream
    answer = client.put("/v1/objects/landing/uploads/day1/a.ndjson", content=data, headers=bearer())
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["size"] == len(data) and [e["pipeline"] for e in body["events"]] == ["files"]
    assert (project.sources["landing"].root / "uploads/day1/a.ndjson").read_bytes() == data
    # the same bytes again are the same event (a re-delivery), not a second one
    again = client.put("/v1/objects/landing/uploads/day1/a.ndjson", content=data, headers=bearer())
    assert again.status_code == 202 and again.json()["events"] == body["events"]
    assert project.ledger.count() == 1


def test_wait_commit_answers_200_with_the_snapshot_and_the_rows_are_in_the_table(project: Project, client: TestClient) -> None:
    with worker(project):
        answer = client.post("/v1/records/clicks?wait=commit", content=NDJSON, headers=bearer())
    assert answer.status_code == 200, answer.text
    (event,) = answer.json()["events"]
    assert event["state"] == "committed" and isinstance(event["snapshot_id"], int) and event["table"] == "raw.clicks"
    assert project.sql("SELECT id, page FROM raw.clicks ORDER BY id").to_pylist() == [
        {"id": 1, "page": "/a"}, {"id": 2, "page": "/b"},
    ]  # fmt: skip


def test_get_event_says_where_it_is_to_its_ingester_and_to_readers(project: Project, client: TestClient) -> None:
    posted = client.post("/v1/records/clicks", content=NDJSON, headers=bearer("clicker")).json()
    event_id = posted["events"][0]["id"]
    for who in ("clicker", "reader", "loader"):
        answer = client.get(f"/v1/events/{event_id}", headers=bearer(who))
        assert answer.status_code == 200 and answer.json()["state"] == "queued", who
        assert "lease_owner" not in answer.json()
    upload = client.put("/v1/objects/landing/uploads/x.ndjson", content=b'{"a": 1}\n', headers=bearer()).json()
    # an ingest:clicks token cannot look at another source's events, nor at unknown ids
    assert client.get(f"/v1/events/{upload['events'][0]['id']}", headers=bearer("clicker")).status_code == 403
    assert client.get("/v1/events/nope", headers=bearer("clicker")).status_code == 403
    assert client.get("/v1/events/nope", headers=bearer("reader")).status_code == 404
    assert client.get(f"/v1/events/{event_id}").status_code == 401


def test_scopes_limit_ingest_to_the_named_pipeline(client: TestClient) -> None:
    assert client.post("/v1/records/clicks", content=NDJSON, headers=bearer("clicker")).status_code == 202
    assert client.post("/v1/records/files", content=NDJSON, headers=bearer("clicker")).status_code == 403
    assert client.put("/v1/objects/landing/uploads/a.ndjson", content=b"{}", headers=bearer("clicker")).status_code == 403
    assert client.post("/v1/records/clicks", content=NDJSON, headers=bearer("reader")).status_code == 403


def test_records_for_a_pipeline_that_reads_csv_are_refused_with_415(project: Project, client: TestClient) -> None:
    answer = client.post("/v1/records/orders", content=NDJSON, headers=bearer())
    assert answer.status_code == 415 and "csv" in answer.json()["error"]
    assert client.post("/v1/records/nope", content=NDJSON, headers=bearer()).status_code == 404
    assert client.put("/v1/objects/nope/a.csv", content=b"x", headers=bearer()).status_code == 404
    assert project.ledger.count() == 0


def test_idempotency_key_replays_the_first_answer_and_lands_once(project: Project, client: TestClient) -> None:
    headers = {**bearer(), "Idempotency-Key": "batch-1"}
    first = client.post("/v1/records/clicks", content=NDJSON, headers=headers)
    again = client.post("/v1/records/clicks", content=NDJSON, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert project.ledger.count() == 1
    # keys are per token: another token's same key is another request
    other = client.post("/v1/records/clicks", content=NDJSON, headers={**bearer("clicker"), "Idempotency-Key": "batch-1"})
    assert other.status_code == 202 and other.json()["events"] != first.json()["events"]
    assert project.ledger.count() == 2


def test_idempotency_key_of_a_request_still_in_flight_gets_409(project: Project, client: TestClient) -> None:
    assert _store(client).claim("loader", "k").state == "new"  # the first request, still running
    answer = client.post("/v1/records/clicks", content=NDJSON, headers={**bearer(), "Idempotency-Key": "k"})
    assert answer.status_code == 409
    assert project.ledger.count() == 0


def test_an_upload_retried_with_its_key_replays_and_wait_commit_waits(project: Project, client: TestClient) -> None:
    headers = {**bearer(), "Idempotency-Key": "up-1"}
    data = b'{"n": 1}\n{"n": 2}\n'
    first = client.put("/v1/objects/landing/uploads/b.ndjson", content=data, headers=headers)
    assert first.status_code == 202
    with worker(project):
        again = client.put("/v1/objects/landing/uploads/b.ndjson?wait=commit", content=data, headers=headers)
    assert again.status_code == 200 and again.json()["events"][0]["state"] == "committed"
    assert project.sql("SELECT count(*) AS n FROM raw.files").to_pylist() == [{"n": 2}]


def test_a_full_backlog_answers_429_with_retry_after(tmp_path: Path) -> None:
    with Project(api_project(tmp_path / "p", max_backlog=1, retry_after="3s")) as project:
        client = TestClient(create_app(project))
        project.ledger.land(source="landing", key="x", uri="file:///x", content_hash="h", size=1, pipelines=["files"])
        answer = client.post("/v1/records/clicks", content=NDJSON, headers=bearer())
        assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
        assert project.ledger.count() == 1 and files_under(project.sources["landing"].root) == []


def test_a_retry_after_a_crash_before_the_answer_was_stored_lands_the_same_event(project: Project) -> None:
    # the first attempt landed, then its host died before `finish`: the claim is taken over and
    # the records land again, under the same name (token, key, bytes), so as the same event
    ing = Ingestor(project)
    batch = parse_records(NDJSON, "")
    first = ing.land_records("clicks", batch, "loader\0batch-9")
    again = ing.land_records("clicks", batch, "loader\0batch-9")
    assert [e.id for e in again] == [e.id for e in first] and project.ledger.count() == 1
    # without a key every post is its own batch, even with the same rows
    ing.land_records("clicks", batch, None)
    ing.land_records("clicks", batch, None)
    assert project.ledger.count() == 3


def test_the_api_commits_its_landings_with_sqlite_fsyncing_the_wal(project: Project, client: TestClient) -> None:
    from icefloe.ledger.sqlite import SqliteLedger

    ledger = project.ledger
    assert isinstance(ledger, SqliteLedger)
    seen: list[int] = []
    land = ledger.land

    def spy(**kwargs: Any) -> Any:
        with ledger._read() as db:
            seen.append(db.execute("PRAGMA synchronous").fetchone()[0])
        return land(**kwargs)

    ledger.land = spy  # type: ignore[method-assign]
    assert client.post("/v1/records/clicks", content=NDJSON, headers=bearer()).status_code == 202
    assert client.put("/v1/objects/landing/uploads/s.ndjson", content=NDJSON, headers=bearer()).status_code == 202
    assert seen == [2, 2]  # FULL: the 202's event outlives a power cut, not only a crash
    with ledger._read() as db:  # and every other commit (the worker's) stays NORMAL
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_wait_commit_on_a_dead_letter_is_202_not_committed_with_the_error(project: Project, client: TestClient) -> None:
    with worker(project):
        answer = client.post("/v1/records/clicks?wait=commit", content=b'{"id": "not a number"}\n', headers=bearer())
    assert answer.status_code == 202 and answer.json()["committed"] is False
    (event,) = answer.json()["events"]
    assert event["state"] == "dead" and event["error"]


def test_an_unknown_wait_is_400_before_anything_lands(project: Project, client: TestClient) -> None:
    assert client.post("/v1/records/clicks?wait=forever", content=NDJSON, headers=bearer()).status_code == 400
    assert project.ledger.count() == 0 and files_under(project.sources["landing"].root) == []

"""Group commit in the ingest API: requests landing together share one ledger transaction (one
WAL fsync), each still gets its own event; a failed shared transaction answers every request
in it with an error; idempotency keys keep replaying."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from icefloe import Project
from icefloe.errors import LedgerUnavailableError
from icefloe.web.app import create_app
from icefloe.web.ingest import Ingestor
from tests.web.apiproject import api_project, bearer, worker


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project(api_project(tmp_path / "p")) as p:
        yield p


def _body(first: int, rows: int = 50) -> bytes:
    return "".join(f'{{"id": {i}, "page": "/p{i}"}}\n' for i in range(first, first + rows)).encode()


def _hold_first_batch(ing: Ingestor, others: int, fail_call: int | None = None) -> list[int]:
    """Make the first landing wait (inside its commit) until `others` requests queue behind it,
    so they go together in the next batch; `fail_call` (1-based, over all calls) raises there."""
    ledger, land, calls = ing.ledger, ing.ledger.land, []

    def spy(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            for _ in range(1000):
                if ing.group.waiting() >= others:
                    break
                threading.Event().wait(0.01)
        if len(calls) == fail_call:
            raise LedgerUnavailableError("the ledger connection was lost (test)")
        return land(**kwargs)

    ledger.land = spy  # type: ignore[method-assign]
    return calls


def _post(project: Project, ing: Ingestor, bodies: list[bytes], headers: list[dict[str, str]]) -> list[httpx.Response]:
    """Every body posted at once (one event loop, as uvicorn runs them), answers in order."""

    async def run() -> list[httpx.Response]:
        app = create_app(project)
        app.state.ingestor = ing
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            posts = (
                client.post("/v1/records/clicks", content=b, headers=h) for b, h in zip(bodies, headers, strict=True)
            )
            return list(await asyncio.gather(*posts))

    return asyncio.run(run())


def test_concurrent_posts_share_a_commit_each_get_their_own_event_and_every_row_lands_once(project: Project) -> None:
    ing = Ingestor(project)
    _hold_first_batch(ing, others=11)
    bodies = [_body(i * 50) for i in range(12)]

    answers = _post(project, ing, bodies, [bearer()] * 12)
    assert [a.status_code for a in answers] == [202] * 12
    ids = [a.json()["events"][0]["id"] for a in answers]
    assert len(set(ids)) == 12 and all(a.json()["rows"] == 50 for a in answers)
    # the first alone, the eleven that queued behind it in one transaction
    assert (ing.group.batches, ing.group.largest) == (2, 11)
    assert sorted(e.id for e in project.ledger.events()) == sorted(ids)
    with worker(project):
        for _ in range(600):
            if project.ledger.pending_count() == 0:
                break
            threading.Event().wait(0.05)
    rows = project.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM raw.clicks").to_pylist()
    assert rows == [{"n": 600, "d": 600}]


def test_a_failed_shared_transaction_answers_every_request_in_it_with_an_error(project: Project) -> None:
    ing = Ingestor(project)
    # the first batch holds one request; the second holds four, and its third landing fails
    _hold_first_batch(ing, others=4, fail_call=4)
    bodies = [_body(i * 50) for i in range(5)]
    headers = [{**bearer(), "Idempotency-Key": f"k{i}"} for i in range(5)]

    answers = _post(project, ing, bodies, headers)
    statuses = [a.status_code for a in answers]
    assert sorted(statuses) == [202, 503, 503, 503, 503], statuses
    assert all(a.headers["retry-after"] for a in answers if a.status_code == 503)
    # nothing of the failed batch was committed, not even the two landings before the failure
    (first,) = [a for a in answers if a.status_code == 202]
    assert [e.id for e in project.ledger.events()] == [first.json()["events"][0]["id"]]
    # every key was given back: the retries are new requests, and land
    failed = [i for i, s in enumerate(statuses) if s == 503]
    ing.ledger.land = type(ing.ledger).land.__get__(ing.ledger)  # type: ignore[method-assign]
    retried = _post(project, ing, [bodies[i] for i in failed], [headers[i] for i in failed])
    assert [a.status_code for a in retried] == [202] * 4
    assert "idempotent-replayed" not in {k.lower() for a in retried for k in a.headers}
    assert project.ledger.count() == 5


def test_idempotent_retries_of_grouped_posts_replay_the_first_answer(project: Project) -> None:
    ing = Ingestor(project)
    _hold_first_batch(ing, others=5)
    bodies = [_body(i * 50) for i in range(6)]
    headers = [{**bearer(), "Idempotency-Key": f"g{i}"} for i in range(6)]

    first = _post(project, ing, bodies, headers)
    again = _post(project, ing, bodies, headers)
    assert [a.status_code for a in first] == [a.status_code for a in again] == [202] * 6
    assert [a.json() for a in again] == [a.json() for a in first]
    assert all(a.headers["idempotent-replayed"] == "true" for a in again)
    assert project.ledger.count() == 6


def test_an_idempotency_answer_commits_with_its_event_or_neither_does(project: Project) -> None:
    # the answer a retry replays is stored in the landing's own transaction: if storing it fails,
    # the event is not committed either (no event whose key still looks unused)
    ing = Ingestor(project)
    store = ing.idempotency
    finish = store.finish

    def broken(*args: Any) -> None:
        raise LedgerUnavailableError("the ledger connection was lost (test)")

    store.finish = broken  # type: ignore[method-assign]

    def post() -> httpx.Response:
        return _post(project, ing, [_body(0)], [{**bearer(), "Idempotency-Key": "a1"}])[0]

    assert post().status_code == 503
    assert project.ledger.count() == 0
    store.finish = finish  # type: ignore[method-assign]
    assert post().status_code == 202 and project.ledger.count() == 1

"""Bad input to the ingest API: a clear error each, and nothing touched (no event, no object,
no partial upload left on the source, no idempotency answer stored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.web.app import create_app
from tests.web.apiproject import api_project, bearer, files_under


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project(api_project(tmp_path / "p", max_object_bytes="64KB", max_records_bytes="1KB")) as p:
        yield p


@pytest.fixture
def client(project: Project) -> TestClient:
    return TestClient(create_app(project))


def _untouched(project: Project) -> None:
    assert project.ledger.count() == 0
    assert files_under(project.sources["landing"].root) == []


def test_invalid_ndjson_is_400_naming_the_line(project: Project, client: TestClient) -> None:
    body = b'{"id": 1}\n{"id": 2,,}\n{"id": 3}\n'
    answer = client.post("/v1/records/clicks", content=body, headers=bearer())
    assert answer.status_code == 400
    assert ":2:" in answer.json()["error"] and "not valid NDJSON" in answer.json()["error"]
    _untouched(project)


def test_a_line_that_is_not_an_object_and_an_empty_post_are_400(project: Project, client: TestClient) -> None:
    answer = client.post("/v1/records/clicks", content=b'{"id": 1}\n[1, 2]\n', headers=bearer())
    assert answer.status_code == 400 and ":2:" in answer.json()["error"] and "JSON object" in answer.json()["error"]
    bad_item = client.post("/v1/records/clicks", content=b'[{"id": 1}, 7]', headers={**bearer(), "Content-Type": "application/json"})
    assert bad_item.status_code == 400 and "item 2" in bad_item.json()["error"]
    assert client.post("/v1/records/clicks", content=b"\n\n", headers=bearer()).status_code == 400
    assert client.post("/v1/records/clicks", content=b"\xff\xfe{}", headers=bearer()).status_code == 400
    _untouched(project)


def test_an_upload_over_the_limit_is_413_and_leaves_no_partial_object(project: Project, client: TestClient) -> None:
    big = b"x" * (65 << 10)
    answer = client.put("/v1/objects/landing/uploads/big.ndjson", content=big, headers=bearer())
    assert answer.status_code == 413  # refused by its Content-Length, before a byte is read
    # chunked: no length up front, refused once the stream passes the limit; the part is removed

    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"y" * 1024

    streamed = client.put("/v1/objects/landing/uploads/big.ndjson", content=chunks(), headers=bearer())
    assert streamed.status_code == 413 and "limit" in streamed.json()["error"]
    records = client.post("/v1/records/clicks", content=b'{"id": 1}\n' * 200, headers=bearer())
    assert records.status_code == 413
    _untouched(project)


def test_a_missing_or_wrong_token_is_401_and_touches_nothing(project: Project, client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer ifl_wrong"}, {"Authorization": "Basic bG9hZGVyOng="}):
        assert client.post("/v1/records/clicks", content=b'{"id": 1}\n', headers=headers).status_code == 401
        assert client.put("/v1/objects/landing/uploads/a.ndjson", content=b"{}", headers=headers).status_code == 401
    _untouched(project)


def test_a_key_that_climbs_out_of_the_source_is_400(project: Project, client: TestClient) -> None:
    answer = client.put("/v1/objects/landing/uploads/..%2F..%2Fescape.ndjson", content=b"{}", headers=bearer())
    assert answer.status_code in (400, 404)
    assert client.put("/v1/objects/landing/a//b", content=b"{}", headers=bearer()).status_code == 400
    _untouched(project)
    assert not (project.root / "escape.ndjson").exists()


def test_an_idempotency_key_replayed_with_another_body_is_422(project: Project, client: TestClient) -> None:
    headers = {**bearer(), "Idempotency-Key": "k1"}
    assert client.post("/v1/records/clicks", content=b'{"id": 1}\n', headers=headers).status_code == 202
    before = files_under(project.sources["landing"].root)
    answer = client.post("/v1/records/clicks", content=b'{"id": 2}\n', headers=headers)
    assert answer.status_code == 422 and "k1" in answer.json()["error"]
    assert project.ledger.count() == 1 and files_under(project.sources["landing"].root) == before
    # the same for an upload: the other body is only hashed, never written
    up = {**bearer(), "Idempotency-Key": "u1"}
    assert client.put("/v1/objects/landing/uploads/a.ndjson", content=b'{"a": 1}\n', headers=up).status_code == 202
    again = client.put("/v1/objects/landing/uploads/a.ndjson", content=b'{"a": 2}\n', headers=up)
    assert again.status_code == 422
    assert (project.sources["landing"].root / "uploads/a.ndjson").read_bytes() == b'{"a": 1}\n'
    assert project.ledger.count() == 2


def test_a_failed_first_request_gives_its_idempotency_key_back(project: Project, client: TestClient) -> None:
    headers = {**bearer(), "Idempotency-Key": "k2"}
    assert client.post("/v1/records/clicks", content=b"not json\n", headers=headers).status_code == 400
    _untouched(project)
    # the corrected retry with the same key is a new request, not a 422 or a replay of the 400
    assert client.post("/v1/records/clicks", content=b'{"id": 1}\n', headers=headers).status_code == 202


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"a": 1}\n{"a": 1}{"b": 2}\n', 2),  # two values on one line
        (b'{"a": 1}\n\n{"a":\n1}\n', 3),  # one object over two lines
        (b'{"a": 1}\nnull\n', 2),  # not an object (a file of only `null` segfaults pyarrow 26's read_json)
        (b'{"a": 1}\r\n{"a": "\xff"}\r\n', 2),  # not UTF-8
        (b'{"a": 1,}\n', 1),
    ],
)
def test_what_is_not_one_object_a_line_is_refused(project: Project, client: TestClient, body: bytes, line: int) -> None:
    answer = client.post("/v1/records/clicks", content=body, headers=bearer())
    assert answer.status_code == 400 and f"body:{line}:" in answer.json()["error"], answer.json()
    _untouched(project)

"""CSV and JSON payloads on a NATS stream: batched by header, a bad message dies alone with its
stream, subject, sequence, line and column; the rest commit, every message is acked or termed."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from tests.sources.nats_helpers import consumer, project_for, publish

pytestmark = pytest.mark.service
CSV_READ = {"format": "csv", "schema": {"n": "long", "page": "string"}}


def test_csv_messages_with_their_header_commit_and_a_bad_one_dies_alone(tmp_path: Path, stream: str) -> None:
    publish(stream, [
        b"n,page\n1,a\n2,b\n",
        b"page,n\nc,3\n",  # another header order: a batch of its own, read by name
        b'n,page\n4,"d\nd"\n5,e,extra\n',  # seq 3: line 4 has a field too many (its comma at column 4)
        b"n,page\n6,f\n",
    ])  # fmt: skip
    with Project(project_for(tmp_path / "p", stream, read=CSV_READ, format="csv")) as project:
        summary = project.run(once=True)
        assert summary.dead == 1
        rows = project.sql("select n, page from web.clicks order by n").to_pylist()
        assert rows == [{"n": 1, "page": "a"}, {"n": 2, "page": "b"}, {"n": 3, "page": "c"}, {"n": 6, "page": "f"}]
        (dead,) = project.dead_letters()
        assert dead.key == f"{stream}/{3:020d}-{3:020d}.csv"
        assert f"bus:{dead.key}:4:4: expected 2 fields, got more" in (dead.error or "")
        assert f"NATS stream {stream}, subject {stream.lower()}.in, seq 3" in (dead.error or "")
        keys = sorted(e.key for e in project.ledger.events())
        assert len(keys) == 4  # 1 | 2 (other header) | 3 (bad) | 4
    assert consumer(stream) == (0, 0)  # the dead one termed, the rest acked


def test_csv_messages_without_a_header_take_the_configured_one(tmp_path: Path, stream: str) -> None:
    publish(stream, [b"1,a\n2,b\n", b"3,c"])
    root = project_for(tmp_path / "p", stream, read=CSV_READ, format="csv", csv_header=["n", "page"])
    with Project(root) as project:
        assert project.run(once=True).dead == 0
        assert project.sql("select n, page from web.clicks order by n").to_pylist() == [
            {"n": 1, "page": "a"}, {"n": 2, "page": "b"}, {"n": 3, "page": "c"},
        ]  # fmt: skip
        (event,) = project.ledger.events()  # the two messages are one batch, one event
        assert event.key == f"{stream}/{1:020d}-{2:020d}.csv"
    assert consumer(stream) == (0, 0)


def test_json_messages_hold_an_object_or_an_array_and_a_bad_one_dies_alone(tmp_path: Path, stream: str) -> None:
    publish(stream, [b'{"n": 1}', b'[{"n": 2},\n {"n": 3}]', b'[{"n": 4},\n {"n": 5,}]', b"[6]", b'{"n": 7}'])
    with Project(project_for(tmp_path / "p", stream, format="json")) as project:
        assert project.run(once=True).dead == 2
        assert project.sql("select n from web.clicks order by n").to_pylist() == [{"n": n} for n in (1, 2, 3, 7)]
        errors = {d.key.split("/")[1][:20]: d.error or "" for d in project.dead_letters()}
        assert ":2:10: invalid JSON" in errors[f"{3:020d}"] and "seq 3" in errors[f"{3:020d}"]
        assert ":1:1: expected a JSON object, got number (element 0 of the array)" in errors[f"{4:020d}"]
    assert consumer(stream) == (0, 0)

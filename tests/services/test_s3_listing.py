"""The reconcile listing of an S3 source (moto on loopback): paged, compared with the ledger's
stamps a page at a time, and resumable from the position the ledger keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.engine import landing
from icefloe.sources.s3 import S3Source
from tests.s3server import S3Server
from tests.services.test_s3 import _project, _put

pytestmark = pytest.mark.service


class Calls:
    """Every S3 operation a source's client makes, with the StartAfter of each listing."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str | None]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.made.append((model.name, params.get("StartAfter")))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]


def _count(project: Project) -> Calls:
    calls = Calls()
    source = project.sources["landing"]
    assert isinstance(source, S3Source)
    source.client.meta.events.register("provide-client-params.s3", calls)
    return calls


@pytest.fixture
def pages_of_3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(landing, "PAGE", 3)
    yield


def _rows(n: int, tag: str = "") -> bytes:
    return f"id,v\n{n},{tag or n}\n".encode()


def test_a_pass_over_known_objects_is_one_list_per_page_and_no_reads(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, pages_of_3: None
) -> None:
    for n in range(7):
        _put(s3_server, s3_bucket, f"{n}.csv", _rows(n))
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        project.run(once=True)
        assert len(project.ledger.events(states=["committed"])) == 7
    with Project(tmp_path) as again:  # a restart: only the ledger remembers the objects
        calls = _count(again)
        assert again.engine().reconcile() == 0
        # 7 objects in pages of 3: three LISTs, and not one HEAD or GET for a known object
        assert calls.names() == ["ListObjectsV2"] * 3
        assert len(again.ledger.events()) == 7


def test_a_key_rewritten_behind_the_saved_position_is_found_after_a_restart(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, pages_of_3: None
) -> None:
    for name in "abcdefg":
        _put(s3_server, s3_bucket, f"{name}.csv", _rows(ord(name)))
    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        project.run(once=True)
        # as a pass stopped by a crash after the first page leaves it
        project.ledger.set_listing_position("landing", "c.csv")
    _put(s3_server, s3_bucket, "a.csv", _rows(1000, "rewritten"))  # same key, new ETag
    with Project(tmp_path) as again:
        calls = _count(again)
        again.run(once=True)
        # round from c.csv: d..g, then from the first key back to c.csv
        assert calls.made[0] == ("ListObjectsV2", "incoming/c.csv")
        assert again.sql("select v from s3t.rows where id = 1000").to_pylist() == [{"v": "rewritten"}]
        assert again.ledger.listing_position("landing") is None  # the pass went round: done


class Killed(BaseException):
    """What a kill -9 looks like to the code after it: nothing more runs."""


def test_a_pass_stopped_midway_carries_on_from_its_position_after_a_restart(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, pages_of_3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(landing, "BATCH", 3)  # a page's changes land (and the position saves) at once
    for n in range(9):
        _put(s3_server, s3_bucket, f"{n}.csv", _rows(n))
    listed = S3Source.list

    def dies_on_the_third_page(self: S3Source, after: str | None = None, limit: int = 1000) -> Any:
        if after == "5.csv":
            raise Killed
        return listed(self, after, limit)

    with Project(_project(tmp_path, s3_server, s3_bucket)) as project:
        monkeypatch.setattr(S3Source, "list", dies_on_the_third_page)
        with pytest.raises(Killed):
            project.engine().reconcile()
        monkeypatch.setattr(S3Source, "list", listed)
        assert sorted(e.key for e in project.ledger.events()) == [f"{n}.csv" for n in range(6)]
        assert project.ledger.listing_position("landing") == "5.csv"
    with Project(tmp_path) as again:
        calls = _count(again)
        again.run(once=True)
        # on from 5.csv (6, 7, 8), then round from the first key to 5.csv: no object landed twice
        assert calls.made[0] == ("ListObjectsV2", "incoming/5.csv")
        assert calls.names().count("ListObjectsV2") == 3 and "GetObject" in calls.names()
        events = again.ledger.events()
        assert sorted(e.key for e in events) == [f"{n}.csv" for n in range(9)]
        assert {e.state for e in events} == {"committed"}
        assert sorted(r["id"] for r in again.sql("select id from s3t.rows").to_pylist()) == list(range(9))

"""A NATS JetStream stream as a source: messages become batches, committed once, acked after."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from tests.helpers import wait_for
from tests.sources.nats_helpers import NATS, consumer, lines, project_for, publish

pytestmark = pytest.mark.service


def test_run_once_commits_every_message_once_and_acks_them(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(*(i * 10 + j for j in range(10))) for i in range(30)])
    with Project(project_for(tmp_path / "p", stream, max_messages=7)) as project:
        summary = project.run(once=True)
        assert summary.dead == 0 and summary.committed >= 5
        rows = project.sql("select count(*) as c, count(distinct n) as d, sum(n) as s from web.clicks").to_pylist()
        assert rows == [{"c": 300, "d": 300, "s": sum(range(300))}]
    assert consumer(stream) == (0, 0)  # every message acknowledged, none waiting
    # a second run finds nothing new and loads nothing twice
    with Project(tmp_path / "p") as project:
        project.run(once=True)
        assert project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 300}]


def test_a_message_that_is_not_ndjson_dies_alone_with_its_sequence(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(1, 2), b'{"n": 3}\n{"n": oops}\n', lines(4)])
    with Project(project_for(tmp_path / "p", stream)) as project:
        summary = project.run(once=True)
        assert summary.dead == 1
        assert project.sql("select n from web.clicks order by n").to_pylist() == [{"n": 1}, {"n": 2}, {"n": 4}]
        (dead,) = project.dead_letters()
        assert dead.key == f"{stream}/{2:020d}-{2:020d}.ndjson"
        assert f"{dead.key}:2:7: invalid JSON" in (dead.error or "")  # the message, its line and column
    # the dead one is terminated (never redelivered), the rest acknowledged
    assert consumer(stream) == (0, 0)


def test_messages_redelivered_after_a_crash_are_not_loaded_twice(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(1), lines(2), lines(3)])
    root = project_for(tmp_path / "p", stream, ack_wait="1s")
    with Project(root) as project:
        source = project.runtime.sources["bus"]
        # a worker batched the messages into the spool, then died before it processed them
        keys: list[str] = []
        source.pull(lambda key, complete: keys.append(key))
        assert len(keys) == 1
    publish(stream, [lines(4)])
    wait_for(lambda: False, timeout=1.5)  # past the ack wait: NATS delivers the three again
    with Project(root) as project:
        assert project.run(once=True).dead == 0
        assert project.sql("select n from web.clicks order by n").to_pylist() == [{"n": n} for n in (1, 2, 3, 4)]
    assert consumer(stream) == (0, 0)


def test_two_workers_on_one_consumer_load_each_message_once(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(i) for i in range(200)])
    root = project_for(tmp_path / "p", stream, max_messages=5)
    results: list[Any] = []

    def worker() -> None:
        with Project(root) as project:
            results.append(project.run(once=True))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with Project(root) as project:
        project.run(once=True)
        rows = project.sql("select count(*) as c, count(distinct n) as d from web.clicks").to_pylist()
    assert rows == [{"c": 200, "d": 200}]
    assert consumer(stream) == (0, 0)


def test_a_running_worker_commits_then_acks(tmp_path: Path, stream: str) -> None:
    with Project(project_for(tmp_path / "p", stream)) as project:
        stop = threading.Event()
        thread = threading.Thread(target=project.run, kwargs={"stop": stop})
        thread.start()
        try:
            publish(stream, [lines(1, 2), lines(3)])

            def loaded() -> bool:
                try:
                    return project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 3}]
                except Exception:  # noqa: BLE001 - the table is not there yet
                    return False

            assert wait_for(loaded, timeout=30)
            assert wait_for(lambda: consumer(stream) == (0, 0), timeout=30)
        finally:
            stop.set()
            thread.join(30)


def test_ingest_into_a_nats_source_is_refused_with_what_to_do(tmp_path: Path, stream: str) -> None:
    from icefloe.errors import DataError

    src = tmp_path / "x.ndjson"
    src.write_bytes(lines(1))
    with Project(project_for(tmp_path / "p", stream)) as project, pytest.raises(DataError, match="publish to it"):
        project.ingest([src], source="bus")


def test_status_shows_the_consumer_lag_and_ack_pending(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(1), lines(2)])
    with Project(project_for(tmp_path / "p", stream)) as project:
        project.runtime.sources["bus"].pull(lambda key, complete: None)  # delivered, not yet acked
        publish(stream, [lines(3)])
        (row,) = [r for r in project.status() if r["kind"] == "source"]
        assert (row["lag"], row["ack_pending"]) == (1, 2)


def test_status_says_when_nats_is_unreachable(tmp_path: Path) -> None:
    root = project_for(tmp_path / "p", "NOPE")
    text = (root / "icefloe.yaml").read_text().replace(NATS, "nats://127.0.0.1:1")
    (root / "icefloe.yaml").write_text(text)
    with Project(root) as project:
        (row,) = [r for r in project.status() if r["kind"] == "source"]
        assert "NATS nats://127.0.0.1:1 stream NOPE" in row["upstream"]

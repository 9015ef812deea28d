"""How a NATS source talks back: in_progress while work runs long, nak(delay) with backoff when
it could not batch, term once dead after max_attempts, claims pruned once acked (and a message
redelivered after that still loaded once), lag and ack-pending in `icefloe status`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.errors import LedgerUnavailableError
from tests.cli.invoke import invoke
from tests.sources.nats_helpers import admin, consumer, lines, project_for, publish

pytestmark = pytest.mark.service


def claim_rows(root: Path) -> int:
    db = sqlite3.connect(root / ".icefloe" / "ledger.db")
    try:
        return int(db.execute("SELECT count(*) FROM objects WHERE source='bus#claims' AND key != ''").fetchone()[0])
    finally:
        db.close()


def test_claims_are_pruned_once_acked_and_a_redelivery_after_that_loads_nothing(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(*(i * 3 + j for j in range(3))) for i in range(100)])
    root = project_for(tmp_path / "p", stream, max_messages=30)
    with Project(root) as project:
        project.run(once=True)
        assert project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 300}]
    assert consumer(stream) == (0, 0)
    assert claim_rows(root) == 0  # all 100 acked: nothing to remember but the floor
    # every message delivered again (a new durable: as a consumer made again, or NATS redelivering
    # a message whose late ack it accepted, nats-server #4786): acked, not batched, not loaded
    (root / "icefloe.yaml").write_text(
        (root / "icefloe.yaml").read_text().replace("max_messages: 30", "max_messages: 30\n      durable: again")
    )
    with Project(root) as project:
        project.run(once=True)
        assert project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 300}]
        assert len(project.ledger.events()) == 4  # the first run's batches, none more
    assert consumer(stream, "again") == (0, 0)


@pytest.mark.parametrize("call", ["stamps", "claim"])  # the look-up of claims, the claim itself
def test_a_batch_the_ledger_could_not_take_comes_back_with_nak_and_backoff(
    tmp_path: Path, stream: str, call: str
) -> None:
    publish(stream, [lines(1), lines(2)])
    root = project_for(tmp_path / "p", stream, nak_backoff="200ms")
    with Project(root) as project:
        source = project.runtime.sources["bus"]
        real = getattr(source.ledger, call)

        def down(keys: list[str], *args: Any) -> dict[str, str]:
            if keys == [""]:  # the floor, read as the session starts: before any message is fetched
                return dict(real(keys, *args))
            raise LedgerUnavailableError("the ledger is busy; try again")

        setattr(source.ledger, call, down)
        taken: list[str] = []
        assert source.pull(lambda key, complete: taken.append(key)) == 2  # no crash, nothing batched
        assert taken == []
        setattr(source.ledger, call, real)
        started = time.monotonic()
        summary = project.run(once=True)
        # back after the nak's delay, not after ack_wait (30 s)
        assert time.monotonic() - started < 20 and summary.dead == 0
        assert project.sql("select n from web.clicks order by n").to_pylist() == [{"n": 1}, {"n": 2}]
    assert consumer(stream) == (0, 0)


def test_held_messages_are_kept_in_progress_past_the_ack_wait(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(1), lines(2)])
    with Project(project_for(tmp_path / "p", stream, ack_wait="1s")) as project:
        source = project.runtime.sources["bus"]
        source.pull(lambda key, complete: None)  # batched and held; nothing commits them yet
        busy = threading.Event()

        def worker() -> None:  # a worker busy for a few ack waits, still confirming as it goes
            while not busy.is_set():
                source.confirm()
                time.sleep(0.2)

        async def redelivered(js: Any) -> int:
            sub = await js.pull_subscribe("", durable="icefloe", stream=stream)
            try:
                return len(await sub.fetch(10, timeout=2.5))
            except TimeoutError:  # nats-py's subclasses it
                return 0

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            time.sleep(1.5)
            # a second consumer client waiting 2.5 ack waits gets nothing: in_progress holds them
            assert asyncio.run(admin(redelivered)) == 0
        finally:
            busy.set()
            thread.join(30)
        assert project.run(once=True).dead == 0
        assert project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 2}]
    assert consumer(stream) == (0, 0)


def test_a_transient_failure_retries_then_dead_letters_and_terminates(tmp_path: Path, stream: str) -> None:
    publish(stream, [lines(1)])
    retry = {"retry": {"max_attempts": 3, "backoff": "10ms", "max_backoff": "20ms"}}
    root = project_for(
        tmp_path / "p", stream, pipeline=retry, top={"catalog": "sqlite:///icefloe.yaml/below-a-file/catalog.db"}
    )
    with Project(root) as project:
        assert project.run(once=True).dead == 1
        (dead,) = project.dead_letters()
        assert dead.attempts == 3 and "gave up after 3 attempts" in (dead.error or "")
    assert consumer(stream) == (0, 0)  # termed: NATS never redelivers it; the spool has the batch
    assert (root / ".icefloe" / "spool" / "bus" / dead.key).exists()


def test_icefloe_status_shows_lag_and_ack_pending(
    tmp_path: Path, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(stream, [lines(1), lines(2)])
    root = project_for(tmp_path / "p", stream)
    with Project(root) as project:
        project.runtime.sources["bus"].pull(lambda key, complete: None)
    publish(stream, [lines(3), lines(4), lines(5)])
    code, out, err = invoke(capsys, "status", "-p", str(root), "--format", "json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out) if r["kind"] == "source"]
    assert (row["lag"], row["ack_pending"]) == (3, 2)
    code, out, err = invoke(capsys, "status", "-p", str(root))
    assert code == 0 and "lag" in out and "ack_pending" in out


def test_a_stream_made_again_under_its_name_is_refused_not_taken_for_redeliveries(tmp_path: Path, stream: str) -> None:
    from icefloe.errors import DataError

    publish(stream, [lines(i) for i in range(5)])
    root = project_for(tmp_path / "p", stream)
    with Project(root) as project:
        project.run(once=True)
    asyncio.run(admin(lambda js: js.delete_stream(stream)))
    asyncio.run(admin(lambda js: js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])))
    publish(stream, [lines(100), lines(101)])  # seqs 1 and 2 again, below the floor (5)
    with Project(root) as project, pytest.raises(DataError, match="the stream was made again"):
        project.run(once=True)
    with Project(root) as project:
        assert project.sql("select count(*) as c from web.clicks").to_pylist() == [{"c": 5}]

    async def durable(js: Any) -> bool:
        from nats.js.errors import NotFoundError

        try:
            await js.consumer_info(stream, "icefloe")
            return True
        except NotFoundError:
            return False

    assert not asyncio.run(admin(durable))  # never made on the new stream: nothing delivered, nothing acked

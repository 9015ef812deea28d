"""NATS chaos: messages published while `icefloe run` workers are killed with SIGKILL at random
moments and started again, and the durable consumer is deleted under them (they make it again,
so NATS delivers the whole stream anew). Afterwards: every published record once in the table,
every message accounted for in the ledger (a committed batch's claim, or below the pruned
floor), nothing left unacked. ICEFLOE_CRASH_SEED replays a failing seed's choices (which worker is
killed, the pauses between kills)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from tests.helpers import wait_for
from tests.sources.nats_helpers import admin, consumer, fresh_stream, project_for

pytestmark = [pytest.mark.service, pytest.mark.slow]
MESSAGES, RECORDS = 400, 5
# seconds from a kill to the next (at the earliest: a batch must commit in between)
PAUSE = (0.2, 3.0)
KILLS = 5


@pytest.fixture
def stream() -> Iterator[str]:
    yield from fresh_stream()


def _body(i: int) -> bytes:
    return b"".join(b'{"n": %d}\n' % (i * RECORDS + j) for j in range(RECORDS))


class Publisher(threading.Thread):
    def __init__(self, stream: str) -> None:
        super().__init__()
        self.stream, self.sent, self.stop = stream, 0, threading.Event()

    def run(self) -> None:
        async def go(js: Any) -> None:
            for i in range(MESSAGES):
                if self.stop.is_set():
                    return
                await js.publish(f"{self.stream.lower()}.in", _body(i))
                self.sent += 1
                await asyncio.sleep(0.03)  # ~12 s or more of publishing: the chaos happens meanwhile

        asyncio.run(admin(go))


def _delete_consumer(stream: str) -> bool:
    from nats.js.errors import NotFoundError

    async def go(js: Any) -> bool:
        try:
            return bool(await js.delete_consumer(stream, "icefloe"))
        except NotFoundError:  # no worker has made it yet
            return False

    return bool(asyncio.run(admin(go)))


def _committed(root: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM events WHERE state='committed'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:  # not made yet, or busy
        return 0


def _unaccounted(root: Path) -> list[int]:
    """Messages neither below the claims' floor nor claimed by a committed batch ([0] while the
    ledger cannot be read)."""
    try:
        db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True, timeout=5)
        try:
            committed = {key for (key,) in db.execute("SELECT key FROM events WHERE state='committed'")}
            claims = dict(db.execute("SELECT key, stamp FROM objects WHERE source='bus#claims'").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return [0]
    floor = int(claims.pop("", 0) or 0)
    return [seq for seq in range(floor + 1, MESSAGES + 1) if claims.get(f"{seq:020d}") not in committed]


class Workers:
    """`icefloe run` processes; one at random is killed with SIGKILL and replaced at random
    moments, each once some batch committed since the last kill (so the run makes progress
    however slowly a loaded machine starts them)."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng, self.started, self.kills = root, rng, 0, 0
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
        self.progress_at_kill, self.next_kill = 0, time.monotonic()

    def start(self) -> None:
        self.started += 1
        log = open(self.root / f"worker-{self.started}.log", "wb")  # noqa: SIM115 - closed by stop()
        self.logs.append(log)
        self.procs.append(subprocess.Popen([sys.executable, "-m", "icefloe", "run", "-p", str(self.root)], env=self.env,
                                           stdout=log, stderr=subprocess.STDOUT))  # fmt: skip

    def kill_when_due(self) -> None:
        committed = _committed(self.root)
        if committed <= self.progress_at_kill or time.monotonic() < self.next_kill:
            return
        proc = self.procs.pop(self.rng.randrange(len(self.procs)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.kills += 1
        self.start()
        self.progress_at_kill, self.next_kill = committed, time.monotonic() + self.rng.uniform(*PAUSE)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for log in self.logs:
            log.close()


def test_kills_and_a_deleted_consumer_lose_and_double_nothing(tmp_path: Path, stream: str) -> None:
    seed = int(os.environ.get("ICEFLOE_CRASH_SEED") or random.randrange(2**32))
    print(f"nats chaos seed {seed} (replay: ICEFLOE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    root = project_for(tmp_path / "p", stream, max_messages=20, ack_wait="2s", top={"maintenance": {"enabled": False}})
    workers = Workers(root, rng)
    workers.start()
    workers.start()
    publisher = Publisher(stream)
    try:
        publisher.start()
        began = time.monotonic()
        deleted = False
        while (publisher.is_alive() or workers.kills < KILLS) and time.monotonic() - began < 150:
            time.sleep(0.1)
            workers.kill_when_due()
            if not deleted and publisher.sent > MESSAGES // 3:
                deleted = _delete_consumer(stream)
        publisher.join(60)
        assert deleted, f"seed {seed}: the consumer was never deleted"
        total = MESSAGES * RECORDS

        def all_in() -> bool:
            try:
                with Project(root) as p:
                    got = p.sql("select count(*) as c from web.clicks").to_pylist()[0]["c"]
                return bool(got >= total and consumer(stream) == (0, 0))
            except Exception:  # noqa: BLE001 - the table or the consumer is not there yet
                return False

        assert wait_for(all_in, timeout=180), (
            f"seed {seed}: not everything committed and acked; see {root}/worker-*.log"
        )
        # the claims a killed worker left go with a prune (every 5 s) by the workers still running
        wait_for(lambda: not _unaccounted(root), timeout=30)
    finally:
        publisher.stop.set()
        publisher.join(60)
        workers.stop()
    with Project(root) as project:
        rows = project.sql(
            "select count(*) as c, count(distinct n) as d, min(n) as lo, max(n) as hi from web.clicks"
        ).to_pylist()
        assert rows == [{"c": total, "d": total, "lo": 0, "hi": total - 1}], f"seed {seed}"
        assert {e.state for e in project.ledger.events()} == {"committed"}, f"seed {seed}"
    # above the floor: a claim naming a committed batch
    assert _unaccounted(root) == [], f"seed {seed}: messages not accounted for"
    # a loaded machine starts workers slowly: the chaos phase ends at 150 s with what it managed
    assert workers.kills >= 3, f"seed {seed}: only {workers.kills} kills"

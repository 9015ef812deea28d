"""Versioned schema: ledgers older icefloe versions wrote open and upgrade without losing a row;
a ledger newer than the code refuses to open; concurrent opens apply each migration once."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from icefloe.errors import LedgerVersionError
from icefloe.ledger import open_ledger
from icefloe.ledger.migrations import LATEST
from icefloe.ledger.sql import SqlLedger

FIXTURE = Path(__file__).parent / "fixtures" / "ledger-818dcae.db"


def _rows(path: Path, sql: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def test_a_ledger_written_by_818dcae_upgrades_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    shutil.copy(FIXTURE, path)
    old_events = _rows(path, "SELECT * FROM events ORDER BY landed_at, id")
    old_steps = _rows(path, "SELECT event_id, step, started_at, ended_at, detail FROM steps ORDER BY rowid")
    old_jobs = _rows(path, "SELECT * FROM jobs ORDER BY id")
    old_workers = _rows(path, "SELECT * FROM workers ORDER BY owner")
    old_objects = _rows(path, "SELECT * FROM objects ORDER BY source, key")
    assert len(old_events) == 12 and {e["state"] for e in old_events} == {
        "committed", "queued", "dead", "retrying", "discarded", "running", "unrouted",
    }  # fmt: skip

    ledger = open_ledger("sqlite:///ledger.db", tmp_path)
    assert isinstance(ledger, SqlLedger) and ledger.schema_status().version == LATEST
    events = ledger.events()
    # every event, every column as it was; numbered in the landing order the old lease used
    assert [e.id for e in events] == [e["id"] for e in old_events]
    for new, old in zip(events, old_events, strict=True):
        assert {k: v for k, v in new.to_dict().items() if k not in ("seq", "epoch", "traceparent")} == old
        assert new.epoch == 0 and new.traceparent is None  # landed before traces: a worker derives one
    assert [e.seq for e in events] == list(range(1, 13))
    steps = [(s.event_id, s.step, s.started_at, s.ended_at) for e in events for s in ledger.steps(e.id)]
    assert sorted(steps) == sorted((s["event_id"], s["step"], s["started_at"], s["ended_at"]) for s in old_steps)
    assert _rows(path, "SELECT event_id, step, started_at, ended_at, detail FROM steps ORDER BY id") == old_steps
    assert _rows(path, "SELECT * FROM jobs ORDER BY id") == old_jobs
    assert _rows(path, "SELECT * FROM workers ORDER BY owner") == old_workers
    assert _rows(path, "SELECT source, key, stamp, content_hash, version FROM objects ORDER BY source, key") == old_objects
    assert [(j.target, j.state) for j in ledger.jobs(kind="maintain")][::-1] == [(j["target"], j["state"]) for j in old_jobs]

    # and it works: the object's current version is known, leases number epochs, commits land
    land: dict[str, Any] = {"source": "landing", "key": "versions.csv", "uri": "file:///v", "size": 1, "pipelines": ["orders"]}
    assert ledger.land(content_hash="h-v0", **land) == []
    (audit,) = ledger.lease("w-new", limit=5, ttl=30, pipelines=["audit"])
    assert (audit.key, audit.epoch) == ("fan.csv", 1)
    ledger.mark_committed([audit.id], table="analytics.audit", snapshot_id=3, stats={}, epochs={audit.id: audit.epoch})
    first = ledger.lease("w-new", limit=1, ttl=30, pipelines=["orders"])[0]
    assert (first.key, first.version) == ("versions.csv", 2)  # the oldest runnable event goes first
    (fresh,) = ledger.land(content_hash="h-new", **{**land, "key": "new.csv"})
    assert fresh.seq > events[-1].seq  # numbers may skip (as a SEQUENCE does), never repeat
    assert ledger.object_stamp("landing", "skipped.csv") == "7:1700000000"
    ledger.close()


# the events table as icefloe wrote it before `stamp` (and `version`, and heartbeats) existed
_BEFORE_STAMP = """
CREATE TABLE events (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, uri TEXT NOT NULL,
    content_hash TEXT NOT NULL, size INTEGER NOT NULL, pipeline TEXT, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5,
    error TEXT, error_kind TEXT, rows_in INTEGER, rows_out INTEGER, rows_quarantined INTEGER,
    "table" TEXT, snapshot_id INTEGER, landed_at REAL NOT NULL, started_at REAL, committed_at REAL,
    updated_at REAL NOT NULL, next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT, lease_expires_at REAL
);
CREATE TABLE steps (event_id TEXT NOT NULL, step TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL, detail TEXT NOT NULL DEFAULT '{}');
INSERT INTO events (id, source, key, uri, content_hash, size, pipeline, state, landed_at, updated_at)
    VALUES ('e1', 'landing', 'a.csv', 'file:///a.csv', 'hA', 1, 'orders', 'committed', 100.0, 100.0);
INSERT INTO steps VALUES ('e1', 'landed', 100.0, 100.0, '{}');
"""


def test_a_ledger_from_before_the_stamp_column_opens_and_lands(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "ledger.db")
    con.executescript(_BEFORE_STAMP)
    con.close()
    ledger = open_ledger("sqlite:///ledger.db", tmp_path)
    (new,) = ledger.land(source="landing", key="b.csv", uri="file:///b.csv", content_hash="hB", size=1, pipelines=["orders"], stamp="1:2")
    (old,) = [e for e in ledger.events() if e.key == "a.csv"]
    assert (old.state, old.stamp, old.version) == ("committed", "", 0)
    assert [s.step for s in ledger.steps(old.id)] == ["landed"]
    (leased,) = ledger.lease("w", limit=1, ttl=30)
    assert leased.id == new.id and leased.stamp == "1:2"
    ledger.close()


def test_a_ledger_newer_than_the_code_refuses_to_open(tmp_path: Path) -> None:
    open_ledger("sqlite:///ledger.db", tmp_path).close()
    con = sqlite3.connect(tmp_path / "ledger.db")
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST + 1,))
    con.commit()
    con.close()
    with pytest.raises(LedgerVersionError, match=f"version {LATEST + 1}, newer than this icefloe knows"):
        open_ledger("sqlite:///ledger.db", tmp_path)


def test_opening_without_upgrading_shows_what_is_pending_and_upgrade_applies_it(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "ledger.db")
    ledger = open_ledger("sqlite:///ledger.db", tmp_path, upgrade=False)
    assert isinstance(ledger, SqlLedger)
    before = ledger.schema_status()
    assert before.version == 0 and [m.version for m in before.pending] == list(range(1, LATEST + 1))
    assert [m.version for m in ledger.upgrade()] == list(range(1, LATEST + 1))
    assert ledger.upgrade() == []
    ledger.close()
    again = open_ledger("sqlite:///ledger.db", tmp_path)
    assert isinstance(again, SqlLedger)
    status = again.schema_status()
    assert [v for v, _, _ in status.applied] == list(range(1, LATEST + 1)) and status.pending == []
    assert len(again.events()) == 12
    again.close()


def test_concurrent_opens_apply_each_migration_once(shared_uri: str, tmp_path: Path) -> None:
    opened: list[SqlLedger] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            led = open_ledger(shared_uri, tmp_path)
            assert isinstance(led, SqlLedger)
            opened.append(led)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors, errors
        assert [v for v, _, _ in opened[0].schema_status().applied] == list(range(1, LATEST + 1))
    finally:
        for led in opened:
            led.close()

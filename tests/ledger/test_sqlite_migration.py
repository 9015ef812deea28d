"""A ledger an older icefloe created keeps opening, and its objects get versions from then on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from icefloe.ledger import event_id, open_ledger

# the tables as icefloe 0.1 (before versions and heartbeats) created them
OLD_SCHEMA = """
CREATE TABLE events (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, uri TEXT NOT NULL,
    content_hash TEXT NOT NULL, size INTEGER NOT NULL, pipeline TEXT, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 5,
    error TEXT, error_kind TEXT, rows_in INTEGER, rows_out INTEGER, rows_quarantined INTEGER,
    "table" TEXT, snapshot_id INTEGER, landed_at REAL NOT NULL, started_at REAL, committed_at REAL,
    updated_at REAL NOT NULL, next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT, lease_expires_at REAL, stamp TEXT NOT NULL DEFAULT ''
);
CREATE TABLE steps (event_id TEXT NOT NULL, step TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL, detail TEXT NOT NULL DEFAULT '{}');
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
    owner TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, detail TEXT NOT NULL DEFAULT '{}', error TEXT
);
CREATE TABLE objects (source TEXT NOT NULL, key TEXT NOT NULL, stamp TEXT NOT NULL, PRIMARY KEY (source, key));
"""


def _old_ledger(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(OLD_SCHEMA)
    for n, content in enumerate(("hA", "hB")):  # a.csv landed as A, then as B, both committed
        con.execute(
            "INSERT INTO events (id, source, key, uri, content_hash, size, pipeline, state, landed_at, updated_at, stamp)"
            " VALUES (?, 'landing', 'a.csv', 'file:///a.csv', ?, 1, 'orders', 'committed', ?, ?, ?)",
            (event_id("landing", "a.csv", content, "orders"), content, 100.0 + n, 100.0 + n, f"stamp{n}"),
        )
    con.execute("INSERT INTO objects VALUES ('landing', 'a.csv', 'stamp1')")
    con.commit()
    con.close()


def test_an_old_ledger_opens_twice_and_versions_continue_from_its_events(tmp_path: Path) -> None:
    _old_ledger(tmp_path / "ledger.db")
    for _ in range(2):  # the migration is idempotent
        ledger = open_ledger("sqlite:///ledger.db", tmp_path)
        assert ledger.object_stamp("landing", "a.csv") == "stamp1"
        assert [e.version for e in ledger.events()] == [0, 0]
        ledger.close()
    ledger = open_ledger("sqlite:///ledger.db", tmp_path)
    land: dict[str, Any] = {"source": "landing", "key": "a.csv", "uri": "file:///a.csv", "size": 1, "pipelines": ["orders"]}
    assert ledger.land(content_hash="hB", **land) == []  # B is the current version: nothing new
    (again,) = ledger.land(content_hash="hA", **land)  # A again: a new version
    assert again.version == 1 and again.id == event_id("landing", "a.csv", "hA", "orders", 1)
    ledger.set_object_stamp("landing", "a.csv", "stamp2")  # keeps the version the landing recorded
    assert ledger.land(content_hash="hA", **land) == []
    ledger.close()

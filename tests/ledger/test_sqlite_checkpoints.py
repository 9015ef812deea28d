"""The SQLite ledger's WAL checkpoints run on a thread of their own, never inside a commit: a
checkpoint copies the WAL into the database and fsyncs both, and SQLite would run it in whichever
commit took the WAL past 1,000 pages (bench 8: every ~19th file, 20-120 ms on a busy disk).
The commits keep a far bound (`AUTOCHECKPOINT`), which finds the WAL copied already."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from icefloe.ledger.sqlite import SqliteLedger

PAGE = 4096


def _land(ledger: SqliteLedger, n: int) -> None:
    for i in range(n):
        ledger.land(source="s", key=f"k{i:06d}-" + "x" * 200, uri=f"file:///k{i}", content_hash=f"h{i}", size=1, pipelines=["p"])


def test_commits_do_not_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SqliteLedger, "CHECKPOINT_EVERY", 3600.0, raising=False)  # the thread stays idle
    ledger = SqliteLedger(tmp_path / "ledger.db")
    try:
        _land(ledger, 3000)
        wal = (tmp_path / "ledger.db-wal").stat().st_size
        # SQLite's own rule would have checkpointed (and restarted the WAL) at 1,000 pages
        assert wal > 1500 * PAGE
    finally:
        ledger.close()


def test_the_checkpoint_thread_keeps_the_wal_small_and_the_rows_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SqliteLedger, "CHECKPOINT_EVERY", 0.05, raising=False)
    ledger = SqliteLedger(tmp_path / "ledger.db")
    try:
        _land(ledger, 3000)
        time.sleep(0.5)  # a few rounds of the thread
        # the rows reached the database file itself, checkpointed by the thread, not by the test
        assert (tmp_path / "ledger.db").stat().st_size > 1000 * PAGE
        # bounded: a commit starts it over once the thread has copied nearly all of it
        assert (tmp_path / "ledger.db-wal").stat().st_size < 1.25 * SqliteLedger.AUTOCHECKPOINT * PAGE
        with sqlite3.connect(tmp_path / "ledger.db") as other:
            assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 3000
        assert ledger.synchronous == "NORMAL"  # unchanged: the same fsyncs, on another thread
    finally:
        ledger.close()
    assert ledger._checkpointer is None

"""SQLite ledger (WAL): the embedded default, good for one machine and several processes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from icefloe.ledger.dialect import DB, SQLITE
from icefloe.ledger.sql import SqlLedger

__all__ = ["SqliteLedger"]


class SqliteLedger(SqlLedger):
    dialect = SQLITE
    # BEGIN IMMEDIATE takes the write lock up front, so two processes leasing at once
    # serialise instead of both reading the same runnable rows
    begin = "BEGIN IMMEDIATE"
    # NORMAL: a commit survives the process crashing, not the machine (the WAL is fsynced at
    # checkpoints); inside `synced()` it is FULL
    synchronous = "NORMAL"

    def __init__(self, path: str | Path, *, upgrade: bool = True) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(upgrade=upgrade)

    def _connect(self) -> DB:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # switching a new file to WAL needs it to itself for a moment, and SQLite answers "locked"
        # at once (no busy wait) while another process's first open is migrating it
        deadline = time.monotonic() + 30
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        return cast(DB, db)

    @contextmanager
    def synced(self) -> Iterator[None]:
        """Commits made inside fsync the WAL (synchronous=FULL), which makes every earlier commit
        durable too: for the one transaction a client is told is durable (the HTTP API's
        landing), without making every other commit of the process pay an fsync."""
        with self._lock:
            db = self._connection()
            db.execute("PRAGMA synchronous=FULL")
            try:
                yield
            finally:
                if self._db is db:  # a lost connection is gone; the next one starts at NORMAL
                    db.execute(f"PRAGMA synchronous={self.synchronous}")

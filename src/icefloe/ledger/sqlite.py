"""SQLite ledger (WAL): the embedded default, good for one machine and several processes."""

from __future__ import annotations

import sqlite3
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
    # checkpoints); `sync_every_commit` makes it FULL
    synchronous = "NORMAL"

    def __init__(self, path: str | Path, *, upgrade: bool = True) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(upgrade=upgrade)

    def _connect(self) -> DB:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        return cast(DB, db)

    def sync_every_commit(self) -> None:
        """From now on every commit fsyncs the WAL (synchronous=FULL): for a process that tells a
        client its data is durable once the transaction recording it commits (the HTTP API)."""
        self.synchronous = "FULL"
        with self._read() as db:
            db.execute("PRAGMA synchronous=FULL")

"""SQLite ledger (WAL): the embedded default, good for one machine and several processes."""

from __future__ import annotations

import sqlite3
import threading
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
    # A checkpoint copies the WAL into the database file and fsyncs both. SQLite runs it inside
    # whichever commit takes the WAL past 1,000 pages: every ~19th file of bench 8, 20-120 ms
    # on a busy disk, in that file's time. A thread of this ledger's own checkpoints every
    # CHECKPOINT_EVERY seconds on its own connection (PASSIVE: it never blocks a writer). Under
    # a steady stream of commits it never quite catches up, and only a checkpoint that has
    # copied every frame lets the next commit start the WAL over, so the commits still
    # checkpoint, at AUTOCHECKPOINT pages: by then the thread has copied and synced nearly all
    # of it and the commit's own checkpoint has little left to do. The same fsyncs happen, as
    # often or more: no commit is durable any later than before.
    CHECKPOINT_EVERY = 0.5
    AUTOCHECKPOINT = 4000

    def __init__(self, path: str | Path, *, upgrade: bool = True) -> None:
        self.path = str(path)
        self._checkpointer: tuple[threading.Thread, threading.Event] | None = None
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
        if self.path != ":memory:":
            db.execute(f"PRAGMA wal_autocheckpoint={self.AUTOCHECKPOINT}")
            self._start_checkpointer()
        return cast(DB, db)

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None or not self._checkpointer[0].is_alive():
            stop = threading.Event()
            thread = threading.Thread(target=self._checkpoint_loop, args=(stop,), name="icefloe-ledger-checkpoint", daemon=True)
            thread.start()
            self._checkpointer = (thread, stop)

    def _checkpoint_loop(self, stop: threading.Event) -> None:
        db: sqlite3.Connection | None = None
        try:
            while not stop.wait(self.CHECKPOINT_EVERY):
                try:
                    if db is None:  # mode=rw: a ledger file removed meanwhile is not made again, empty
                        uri = Path(self.path).resolve().as_uri() + "?mode=rw"
                        db = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None, check_same_thread=False)
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy, or the file is gone for now: the next round tries again
                    if db is not None:
                        db.close()
                    db = None
        finally:
            if db is not None:
                db.close()

    def close(self) -> None:
        super().close()
        if self._checkpointer is not None:
            thread, stop = self._checkpointer
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=10)
            self._checkpointer = None

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

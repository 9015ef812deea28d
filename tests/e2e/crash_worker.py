"""The `icefloe run` worker as a subprocess, and read-only peeks at its ledger and catalog.

Part of the kill -9 harness (tests/e2e/crash_harness.py). Nothing here imports pytest or icefloe.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Worker", "iceberg_event_ids", "run_once"]


# -- the worker subprocess --------------------------------------------------------------------------
def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Worker:
    """`python -m icefloe run -p ROOT` as a subprocess, its output appended to a log file."""

    def __init__(self, root: Path, log: Path, *, once: bool = False) -> None:
        self.root, self.log = root, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._out = log.open("ab")
        self._start = self._out.tell()
        self._out.write(f"\n===== {'run --once' if once else 'run'} at {time.time():.3f} =====\n".encode())
        self._out.flush()
        cmd = [sys.executable, "-m", "icefloe", "run", "-p", str(root), *(["--once"] if once else [])]
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=_python_env())
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM once the worker has installed its handler: a signal that arrives while Python is
        still importing kills the process (-15) instead of stopping it cleanly."""
        deadline = time.time() + timeout
        while self.alive() and time.time() < deadline:
            with self.log.open("rb") as fh:
                fh.seek(self._start)
                if b"icefloe: watching" in fh.read():
                    break
            time.sleep(0.05)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL; returns the exit code if the worker had already exited by itself."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()
        return code

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()


def run_once(root: Path, log: Path | None = None, timeout: float = 180.0) -> tuple[int, float]:
    """`python -m icefloe run -p ROOT --once`; returns (exit code, seconds)."""
    worker = Worker(root, log or root / ".crash" / "worker.log", once=True)
    try:
        code = worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    return code, time.time() - worker.started


# -- peeking at the ledger and the catalog without icefloe ------------------------------------------
class _Peek:
    """Looks (SELECT only) at ledger.db and catalog.db with plain sqlite3 (cheap enough to poll)."""

    def __init__(self, root: Path) -> None:
        self.ledger_path = root / ".icefloe" / "ledger.db"
        self.catalog_path = root / "catalog.db"
        self._ledger: sqlite3.Connection | None = None
        self._catalog: sqlite3.Connection | None = None

    def _q(self, which: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = self.ledger_path if which == "ledger" else self.catalog_path
        con = self._ledger if which == "ledger" else self._catalog
        if con is None:
            if not path.exists():
                return []
            # not mode=ro: a worker killed mid-transaction leaves a hot journal that only a
            # connection allowed to write can roll back; this one still only ever SELECTs
            con = sqlite3.connect(path, timeout=30)
            if which == "ledger":
                self._ledger = con
            else:
                self._catalog = con
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the worker has not created its schema yet
                return []
            raise

    def max_step(self) -> int:
        rows = self._q("ledger", "SELECT MAX(rowid) FROM steps")
        return int(rows[0][0] or 0) if rows else 0

    def step_since(self, rowid: int, step: str, like: str | None = None) -> bool:
        sql = "SELECT 1 FROM steps WHERE rowid > ? AND step = ?"
        params: tuple[Any, ...] = (rowid, step)
        if like is not None:
            sql += " AND detail LIKE ?"
            params += (like,)
        return bool(self._q("ledger", sql + " LIMIT 1", params))

    def job_running(self, since: float) -> bool:
        """A maintenance job started after `since` is still running."""
        try:
            return bool(self._q("ledger", "SELECT 1 FROM jobs WHERE state = 'running' AND started_at > ? LIMIT 1", (since,)))
        except sqlite3.OperationalError:  # the worker has not created the table yet
            return False

    def first_leases(self, rowid: int) -> dict[str, float]:
        """Event id -> when it was first leased after step `rowid`."""
        rows = self._q("ledger", "SELECT event_id, MIN(started_at) FROM steps WHERE rowid > ? AND step = 'leased' GROUP BY event_id", (rowid,))
        return {i: t for i, t in rows}

    def pointers(self) -> dict[str, str]:
        rows = self._q("catalog", "SELECT table_namespace || '.' || table_name, metadata_location FROM iceberg_tables")
        return {name: loc for name, loc in rows}

    def ledger_states(self) -> dict[str, tuple[str, str | None, float | None]]:
        rows = self._q("ledger", "SELECT id, state, lease_owner, lease_expires_at FROM events")
        return {i: (s, o, e) for i, s, o, e in rows}

    def close(self) -> None:
        for con in (self._ledger, self._catalog):
            if con is not None:
                con.close()
        self._ledger = self._catalog = None


def iceberg_event_ids(metadata_location: str) -> dict[str, int]:
    """Event id -> snapshot id, straight from a table's metadata JSON (no pyiceberg needed)."""
    path = metadata_location[len("file://") :] if metadata_location.startswith("file://") else metadata_location
    if path.endswith(".gz.metadata.json"):
        import gzip

        meta = json.loads(gzip.decompress(Path(path).read_bytes()))
    else:
        meta = json.loads(Path(path).read_text())
    ids: dict[str, int] = {}
    for snapshot in meta.get("snapshots", []):
        value = (snapshot.get("summary") or {}).get("icefloe.events")
        if value:
            ids.update(dict.fromkeys(value.split(","), snapshot["snapshot-id"]))
    return ids

"""The `icefloe run` worker as a subprocess, and read-only peeks at its ledger and catalog.

Part of the kill -9 harness (tests/e2e/crash_harness.py). Nothing here imports pytest or icefloe.
"""

from __future__ import annotations

import contextlib
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
        self._ready = False
        self._out.write(f"\n===== {'run --once' if once else 'run'} at {time.time():.3f} =====\n".encode())
        self._out.flush()
        cmd = [sys.executable, "-m", "icefloe", "run", "-p", str(root), *(["--once"] if once else [])]
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=_python_env())
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        """Its imports are done and its project is open: it said `icefloe: watching`."""
        if not self._ready:
            with self.log.open("rb") as fh:
                fh.seek(self._start)
                self._ready = b"icefloe: watching" in fh.read()
        return self._ready

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM once the worker has installed its handler: a signal that arrives while Python is
        still importing kills the process (-15) instead of stopping it cleanly."""
        deadline = time.time() + timeout
        while self.alive() and time.time() < deadline and not self.ready():
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
    except BaseException:  # its timeout, or the test's (pytest-timeout): never leave it running
        worker.kill()
        raise
    return code, time.time() - worker.started


# -- peeking at the ledger and the catalog without icefloe ------------------------------------------
class _Peek:
    """Looks (SELECT only) at the ledger and the catalog with plain sqlite3 or psycopg (cheap
    enough to poll every few ms, which going through icefloe is not).

    `ledger_url` / `catalog_url` are the project's `ledger:` / `catalog:` when they are
    PostgreSQL; None means the SQLite files of the crash project. The tables are icefloe's and
    pyiceberg's own; the one spelling that differs is the steps' numbering (`rowid` in SQLite,
    the `id` column in PostgreSQL)."""

    def __init__(self, root: Path, ledger_url: str | None = None, catalog_url: str | None = None) -> None:
        self.ledger_path = root / ".icefloe" / "ledger.db"
        self.catalog_path = root / "catalog.db"
        self.urls = {"ledger": _pg(ledger_url), "catalog": _pg(catalog_url)}
        self._cons: dict[str, Any] = {}

    def _connect(self, which: str) -> Any:
        url = self.urls[which]
        if url is not None:
            import psycopg

            return psycopg.connect(url, autocommit=True, connect_timeout=10)
        path = self.ledger_path if which == "ledger" else self.catalog_path
        if not path.exists():
            return None
        # not mode=ro: a worker killed mid-transaction leaves a hot journal that only a
        # connection allowed to write can roll back; this one still only ever SELECTs
        return sqlite3.connect(path, timeout=30)

    def _q(self, which: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        pg = self.urls[which] is not None
        if pg:
            sql = sql.replace("?", "%s").replace("rowid", "id")
        for attempt in (1, 2):
            con = self._cons.get(which)
            if con is None:
                con = self._connect(which)
                if con is None:
                    return []
                self._cons[which] = con
            try:
                return list(con.execute(sql, params).fetchall())
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # the worker has not created its schema yet
                    return []
                raise
            except Exception as exc:
                if not pg:
                    raise
                import psycopg

                if isinstance(exc, psycopg.errors.UndefinedTable):
                    return []
                if attempt == 1 and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                    # the connection was dropped (the harness's own pg_terminate_backend): reconnect
                    self._drop(which)
                    continue
                raise
        return []

    def _drop(self, which: str) -> None:
        con = self._cons.pop(which, None)
        if con is not None:
            with contextlib.suppress(Exception):  # a dropped connection may refuse even its close
                con.close()

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

    def committed_anew(self, rowid: int, since: float) -> bool:
        """An Iceberg commit that started after `since` was then marked committed in the ledger."""
        sql = (
            "SELECT 1 FROM steps c JOIN steps m ON m.rowid > c.rowid AND m.step = 'committed'"
            " WHERE c.rowid > ? AND c.step = 'commit' AND c.started_at > ? LIMIT 1"
        )
        return bool(self._q("ledger", sql, (rowid, since)))

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
        for which in list(self._cons):
            self._drop(which)


def _pg(url: str | None) -> str | None:
    """A libpq URL for psycopg from `postgresql://` or SQLAlchemy's `postgresql+psycopg://`; None for SQLite."""
    if url is None or url.startswith("sqlite"):
        return None
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"the crash harness peeks at SQLite or PostgreSQL, not {url!r}")
    return "postgresql://" + rest


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

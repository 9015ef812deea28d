"""The SQLite ledger's aggregates and paging: what `status`, `dlq list`, `trace` and `icefloe.events`
ask, answered by GROUP BY and keyset pages instead of every event in memory.

Landing order here is the table's `rowid` (insertion order), standing in for the `seq` column a
database sequence will give; a ledger only grows by INSERT in landing order, and nothing VACUUMs it.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from icefloe.ledger.base import Event, GroupCount

__all__ = ["SqliteViews"]


class SqliteViews:
    _db: sqlite3.Connection
    _lock: threading.RLock

    @functools.cached_property
    def _view_columns(self) -> list[str]:
        """The Event fields the events table holds (all but `seq`, which is its rowid here)."""
        with self._lock:
            have = {r[1] for r in self._db.execute("PRAGMA table_info(events)")}
        return [name for name in Event.__dataclass_fields__ if name in have]

    def _select_seq(self) -> str:
        return "SELECT " + ", ".join(f'"{c}"' for c in self._view_columns) + ", rowid FROM events"

    def _with_seq(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        names = self._view_columns
        return [Event(**dict(zip(names, row[:-1], strict=True)), seq=int(row[-1])) for row in rows]

    def counts(self) -> list[GroupCount]:
        sql = (
            "SELECT source, pipeline, state, COUNT(*), MIN(landed_at), MAX(landed_at), MAX(committed_at),"
            " COALESCE(SUM(rows_quarantined), 0) FROM events GROUP BY source, pipeline, state"
            " ORDER BY source, pipeline, state"
        )
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [GroupCount(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], int(r[7])) for r in rows]

    def object_count(self, source: str) -> int:
        sql = "SELECT COUNT(*) FROM (SELECT DISTINCT key, content_hash FROM events WHERE source=?)"
        with self._lock:
            return int(self._db.execute(sql, (source,)).fetchone()[0])

    def last_error(self, pipeline: str) -> str | None:
        sql = (
            "SELECT error FROM events WHERE pipeline=? AND state='dead'"
            " ORDER BY updated_at DESC, landed_at, id LIMIT 1"
        )
        with self._lock:
            row = self._db.execute(sql, (pipeline,)).fetchone()
        return row[0] if row else None

    def _where(
        self, states: Iterable[str] | None, pipeline: str | None, source: str | None, after: int | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if states is not None:
            names = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(names))})" if names else "0")
            params += names
        if pipeline is not None:
            clauses, params = [*clauses, "pipeline=?"], [*params, pipeline]
        if source is not None:
            clauses, params = [*clauses, "source=?"], [*params, source]
        if after is not None:
            clauses, params = [*clauses, "rowid > ?"], [*params, int(after)]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def page(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        where, params = self._where(states, pipeline, source, after)
        sql = f"{self._select_seq()}{where} ORDER BY rowid LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*params, int(limit)]).fetchall()
        return self._with_seq(rows)

    def count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
    ) -> int:
        where, params = self._where(states, pipeline, source, after)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM events{where}", params).fetchone()[0])

    def find_by_name(self, name: str, limit: int = 20) -> list[Event]:
        # substr, not LIKE: LIKE ignores ASCII case and reads % and _ in a file name as wildcards
        sql = (
            f"{self._select_seq()} WHERE key = ? OR (length(key) > length(?)"
            " AND substr(key, length(key) - length(?)) = '/' || ?)"
            " ORDER BY key = ? DESC, rowid DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (name, name, name, name, name, int(limit))).fetchall()
        return self._with_seq(rows)

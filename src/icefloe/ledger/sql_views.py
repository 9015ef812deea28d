"""Reading the events: lookups, keyset pages and GROUP BY aggregates, so no view has to load
every event into memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from icefloe.errors import IcefloeError
from icefloe.ledger.base import Bucket, Event, GroupCount, LedgerGauges
from icefloe.ledger.sql_side import SELECT, SqlBase, event_row

__all__ = ["SqlReads"]

_PENDING = "('landed', 'queued', 'running', 'retrying')"
# the event times a histogram may bucket (a column name goes into the SQL, so only these)
_TIME_COLUMNS = ("landed_at", "committed_at", "updated_at")


def _filters(states: Iterable[str] | None, pipeline: str | None, source: str | None = None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if states is not None:
        names = list(states)
        clauses.append(f"state IN ({', '.join('?' * len(names))})" if names else "1=0")
        params += names
    if pipeline is not None:
        clauses.append("pipeline=?")
        params.append(pipeline)
    if source is not None:
        clauses.append("source=?")
        params.append(source)
    return clauses, params


class SqlReads(SqlBase):

    def get(self, id: str) -> Event | None:
        with self._read() as db:
            row = db.execute(f"{SELECT} WHERE id=?", (id,)).fetchone()
        return event_row(row) if row else None

    def find(self, prefix: str) -> Event | None:
        with self._read() as db:
            # ids are lower-case hex; LIKE ignores case on SQLite only, so fold it here
            rows = db.execute(f"{SELECT} WHERE id LIKE ? LIMIT 2", (prefix.lower() + "%",)).fetchall()
        if len(rows) > 1:
            raise IcefloeError(f"event id prefix {prefix!r} is ambiguous")
        return event_row(rows[0]) if rows else None

    def events(
        self, *, states: Iterable[str] | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[Event]:
        clauses, params = _filters(states, pipeline)
        sql = SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as db:
            return [event_row(r) for r in db.execute(sql, params).fetchall()]

    def page(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        clauses, params = _filters(states, pipeline, source)
        if after is not None:
            clauses.append("seq > ?")
            params.append(after)
        sql = SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq LIMIT ?"
        with self._read() as db:
            return [event_row(r) for r in db.execute(sql, [*params, int(limit)]).fetchall()]

    def count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
    ) -> int:
        clauses, params = _filters(states, pipeline, source)
        if after is not None:
            clauses.append("seq > ?")
            params.append(after)
        sql = "SELECT COUNT(*) FROM events" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        with self._read() as db:
            return int(db.execute(sql, params).fetchone()[0])

    def iter_events(self, **filters: Any) -> Iterator[Event]:
        """Every matching event, a page at a time."""
        after = None
        while page := self.page(after=after, **filters):
            yield from page
            after = page[-1].seq

    def find_by_name(self, name: str, limit: int = 20) -> list[Event]:
        # substr, not LIKE: LIKE ignores case on SQLite and not on PostgreSQL, and `%`/`_` in a
        # name would be wildcards
        tail = "/" + name
        # the exact key first, then the newest: the limit keeps what a person naming a file means
        sql = (
            f"{SELECT} WHERE key = ? OR substr(key, length(key) - ? + 1) = ?"
            " ORDER BY CASE WHEN key = ? THEN 0 ELSE 1 END, seq DESC LIMIT ?"
        )
        with self._read() as db:
            return [event_row(r) for r in db.execute(sql, (name, len(tail), tail, name, int(limit))).fetchall()]

    def counts(self) -> list[GroupCount]:
        sql = (
            "SELECT source, pipeline, state, COUNT(*), MIN(landed_at), MAX(landed_at), MAX(committed_at),"
            " COALESCE(SUM(rows_quarantined), 0) FROM events GROUP BY source, pipeline, state"
        )
        with self._read() as db:
            rows = db.execute(sql).fetchall()
        found = [GroupCount(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], int(r[7])) for r in rows]
        # NULLs sort first on SQLite and last on PostgreSQL: order here, the same everywhere
        return sorted(found, key=lambda g: (g.source, g.pipeline or "", g.state))

    def object_count(self, source: str) -> int:
        with self._read() as db:
            # an object is its key: its versions and fan-out are one object
            return int(db.execute("SELECT COUNT(DISTINCT key) FROM events WHERE source=?", (source,)).fetchone()[0])

    def last_error(self, pipeline: str) -> str | None:
        with self._read() as db:
            row = db.execute(
                "SELECT error FROM events WHERE pipeline=? AND state='dead' ORDER BY updated_at DESC, seq DESC LIMIT 1", (pipeline,)
            ).fetchone()
        return row[0] if row else None

    def pending_count(self, pipelines: Iterable[str] | None = None) -> int:
        sql = f"SELECT COUNT(*) FROM events WHERE state IN {_PENDING}"
        params: list[Any] = []
        if pipelines is not None:
            names = list(pipelines)
            sql += f" AND pipeline IN ({', '.join('?' * len(names))})" if names else " AND 1=0"
            params = names
        with self._read() as db:
            return int(db.execute(sql, params).fetchone()[0])

    def search(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        clauses, params = _window(_filters(states, pipeline, source), since, until, before)
        sql = SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq DESC LIMIT ?"
        with self._read() as db:
            return [event_row(r) for r in db.execute(sql, [*params, int(limit)]).fetchall()]

    def search_count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        clauses, params = _window(_filters(states, pipeline, source), since, until, None)
        sql = "SELECT COUNT(*) FROM events" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        with self._read() as db:
            return int(db.execute(sql, params).fetchone()[0])

    def histogram(self, column: str, *, since: float, bucket: float, states: Iterable[str] | None = None) -> list[Bucket]:
        if column not in _TIME_COLUMNS:
            raise ValueError(f"histogram over {column!r}: use one of {', '.join(_TIME_COLUMNS)}")
        clauses, params = _filters(states, None)
        # floor((t - since) / bucket) in SQL both databases run alike: CAST truncates on SQLite
        # and rounds on PostgreSQL, so take one off where the cast went above the value
        x = f"(({column} - ?) / ?)"
        index = f"(CAST({x} AS INTEGER) - CASE WHEN CAST({x} AS INTEGER) > {x} THEN 1 ELSE 0 END)"
        where = " AND ".join([f"{column} >= ?", *clauses])
        sql = (
            f"SELECT pipeline, {index} AS b, COUNT(*), COALESCE(SUM(rows_out), 0) FROM events"
            f" WHERE {where} GROUP BY pipeline, b"
        )
        args = [since, float(bucket)] * 3 + [since, *params]
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [Bucket(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]
    def gauges(self, tables: list[str]) -> LedgerGauges:
        # each part walks an index (migration 5): the backlog reads only the pending and dead
        # entries of events_backlog (state, pipeline, landed_at), never a committed event, and
        # each table's last commit is the end of its range in events_freshness
        parts = [
            # by state too: the rows then come in the index's order and aggregate as they stream,
            # instead of each looked up in a temporary B-tree of groups
            f"SELECT 'p', pipeline, COUNT(*), MIN(landed_at) FROM events WHERE state IN {_PENDING} GROUP BY state, pipeline",
            "SELECT 'd', pipeline, COUNT(*), NULL FROM events WHERE state = 'dead' GROUP BY pipeline",
        ]
        params: list[Any] = []
        for table in tables:
            parts.append("SELECT 't', ?, 0, (SELECT MAX(committed_at) FROM events WHERE \"table\" = ?)")
            params += [table, table]
        found = LedgerGauges()
        with self._read() as db:
            for kind, name, n, at in db.execute(" UNION ALL ".join(parts), params).fetchall():
                if kind == "p" and name is not None:
                    count, oldest = found.pending.get(name, (0, float(at)))
                    found.pending[name] = (count + int(n), min(oldest, float(at)))
                elif kind == "d" and name is not None:
                    found.dead[name] = int(n)
                elif kind == "t" and at is not None:
                    found.last_commit[name] = float(at)
        return found


def _window(
    where: tuple[list[str], list[Any]], since: float | None, until: float | None, before: int | None
) -> tuple[list[str], list[Any]]:
    """`where` narrowed to landings in [since, until) and to sequences below `before`."""
    clauses, params = where
    for clause, value in (("landed_at >= ?", since), ("landed_at < ?", until), ("seq < ?", before)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return clauses, params

"""Reading the events: lookups, keyset pages and GROUP BY aggregates, so no view has to load
every event into memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from icefloe.errors import IcefloeError
from icefloe.ledger.base import STATES, Bucket, Event, GroupCount, LedgerCounts, LedgerGauges, StateCount
from icefloe.ledger.sql_side import SELECT, SqlBase, event_row

__all__ = ["SqlReads"]

_PENDING_STATES = ("landed", "queued", "running", "retrying")
_PENDING = "('landed', 'queued', 'running', 'retrying')"
# the event times a histogram may bucket (a column name goes into the SQL, so only these)
_TIME_COLUMNS = ("landed_at", "committed_at", "updated_at")


def _filters(states: Iterable[str] | None, pipeline: str | None, source: str | None = None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if states is not None:
        names = list(states)
        if names and all(n in STATES for n in names):
            # written out, not bound: SQLite uses a partial index (events_dead, events_failed) only
            # for a query whose WHERE says its condition, and a state is one of a few known words
            words = ", ".join(f"'{n}'" for n in names)
            clauses.append(f"state = {words}" if len(names) == 1 else f"state IN ({words})")
        else:
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

    def get_many(self, ids: Iterable[str]) -> dict[str, Event]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Event] = {}
        with self._read() as db:
            for start in range(0, len(wanted), 500):  # under SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                rows = db.execute(f"{SELECT} WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
                found.update((ev.id, ev) for ev in map(event_row, rows))
        return found

    def with_committed_version(self, events: Iterable[Event]) -> set[str]:
        ids = list(dict.fromkeys(ev.id for ev in events))
        found: set[str] = set()
        with self._read() as db:
            for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                rows = db.execute(
                    f"SELECT e.id FROM events e WHERE e.id IN ({', '.join('?' * len(chunk))}) AND EXISTS (SELECT 1 FROM events c"
                    " WHERE c.source = e.source AND c.key = e.key AND c.pipeline = e.pipeline AND c.state = 'committed' AND c.id != e.id)",
                    chunk,
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

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

    def tallies(self) -> LedgerCounts:
        found = LedgerCounts()
        with self._read() as db:
            rows = db.execute(
                "SELECT source, pipeline, state, n, rows_quarantined, last_committed_at FROM event_counts WHERE n <> 0"
            ).fetchall()
            sources = db.execute("SELECT source, objects, last_landed_at FROM source_counts").fetchall()
        found.states = sorted(
            (StateCount(r[0], r[1] or None, r[2], int(r[3]), int(r[4]), r[5]) for r in rows),
            key=lambda c: (c.source, c.pipeline or "", c.state),
        )
        for source, objects, last in sources:
            if objects:
                found.objects[source] = int(objects)
            if last is not None:
                found.last_landed[source] = float(last)
        return found

    def lease_holders(self, named: int = 5) -> dict[str, tuple[int, list[Event]]]:
        found: dict[str, tuple[int, list[Event]]] = {}
        with self._read() as db:
            # both read events_running (state, lease_owner, seq): the running events only
            owners = db.execute("SELECT lease_owner, COUNT(*) FROM events WHERE state = 'running' GROUP BY lease_owner").fetchall()
            for owner, n in owners:
                if owner:
                    rows = db.execute(f"{SELECT} WHERE state = 'running' AND lease_owner = ? ORDER BY seq LIMIT ?", (owner, int(named)))
                    found[owner] = (int(n), [event_row(r) for r in rows.fetchall()])
        return dict(sorted(found.items(), key=lambda item: item[1][1][0].seq if item[1][1] else 0))

    def object_count(self, source: str) -> int:
        # an object is its key: its versions and fan-out are one object (counted by `land`)
        with self._read() as db:
            row = db.execute("SELECT objects FROM source_counts WHERE source=?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def last_error(self, pipeline: str) -> str | None:
        with self._read() as db:
            row = db.execute(
                "SELECT error FROM events WHERE pipeline=? AND state='dead' ORDER BY updated_at DESC, seq DESC LIMIT 1", (pipeline,)
            ).fetchone()
        return row[0] if row else None

    def pending_count(self, pipelines: Iterable[str] | None = None) -> int:
        return self._counted(_PENDING_STATES, pipelines)

    def _counted(self, states: Iterable[str] | None, pipelines: Iterable[str] | None, source: str | None = None) -> int:
        """Events in these states (and pipelines, source), summed from the counters."""
        clauses, params = _filters(states, None, source)
        if pipelines is not None:
            names = list(pipelines)
            clauses.append(f"pipeline IN ({', '.join('?' * len(names))})" if names else "1=0")
            params += names
        sql = "SELECT COALESCE(SUM(n), 0) FROM event_counts" + (" WHERE " + " AND ".join(clauses) if clauses else "")
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
        if since is None and until is None:
            return self._counted(states, None if pipeline is None else [pipeline], source)
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
        # the counts are the counters' few rows (migration 7); the oldest pending landing is one
        # seek per (state, pipeline) into events_backlog on SQLite, per pipeline into
        # events_pending_landed on PostgreSQL (see migration 7), and each table's last commit
        # the end of its range in events_freshness
        if self.dialect.name == "sqlite":  # MIN over an IN list is no seek there: one per state
            match = "e.state = c.state AND e.pipeline = c.pipeline) FROM event_counts c"
            by = "c.state, c.pipeline"
        else:
            match = f"e.pipeline = c.pipeline AND e.state IN {_PENDING}) FROM event_counts c"
            by = "c.pipeline"
        parts = [
            f"SELECT 'p', c.pipeline, SUM(c.n), (SELECT MIN(e.landed_at) FROM events e WHERE {match}"
            f" WHERE c.state IN {_PENDING} AND c.n > 0 GROUP BY {by}",
            "SELECT 'd', pipeline, SUM(n), NULL FROM event_counts WHERE state = 'dead' AND n > 0 GROUP BY pipeline",
        ]
        params: list[Any] = []
        for table in tables:
            parts.append("SELECT 't', ?, 0, (SELECT MAX(committed_at) FROM events WHERE \"table\" = ?)")
            params += [table, table]
        found = LedgerGauges()
        with self._read() as db:
            for kind, name, n, at in db.execute(" UNION ALL ".join(parts), params).fetchall():
                if kind == "p" and name and at is not None:
                    count, oldest = found.pending.get(name, (0, float(at)))
                    found.pending[name] = (count + int(n), min(oldest, float(at)))
                elif kind == "d" and name:
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

"""The read side of the ledger seam: lookups, aggregates and keyset pages, each bounded (no
call loads every event)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from icefloe.ledger.model import Bucket, Event, GroupCount, LedgerCounts, LedgerGauges

__all__ = ["ViewLedger"]


class ViewLedger(ABC):
    """What `status`, the dashboard, `icefloe.events` and /metrics read."""

    @abstractmethod
    def get(self, id: str) -> Event | None: ...

    @abstractmethod
    def get_many(self, ids: Iterable[str]) -> dict[str, Event]:
        """`get` for many ids in one lookup (the events of an expiring snapshot): id -> event,
        ids not in the ledger absent."""

    @abstractmethod
    def find(self, prefix: str) -> Event | None:
        """An event by id or unique id prefix."""

    @abstractmethod
    def events(
        self, *, states: Iterable[str] | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[Event]: ...

    @abstractmethod
    def counts(self) -> list[GroupCount]:
        """One row per (source, pipeline, state) that has events, grouped by the database."""

    @abstractmethod
    def tallies(self) -> LedgerCounts:
        """What `counts` and `object_count` count, read from counters every transition keeps
        exact in its own transaction: a few rows, however many events the ledger holds."""

    @abstractmethod
    def lease_holders(self, named: int = 5) -> dict[str, tuple[int, list[Event]]]:
        """Per owner of running events: how many it holds and its first `named` (landing order),
        owners in the order of their first event."""

    @abstractmethod
    def object_count(self, source: str) -> int:
        """Distinct objects recorded for the source: each (key, bytes) its events landed counts once."""

    @abstractmethod
    def last_error(self, pipeline: str) -> str | None:
        """The error of the pipeline's dead event updated last, if any is dead."""

    @abstractmethod
    def page(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Up to `limit` events in landing order (`seq`), after the `seq` of the previous page's
        last event: keyset paging, so page N costs what page 1 does."""

    @abstractmethod
    def find_by_name(self, name: str, limit: int = 20) -> list[Event]:
        """Events whose key is `name` or ends with `/name` (case-sensitive): exact keys first,
        then newest landing first, so the limit keeps what a person naming a file means."""

    def count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        after: int | None = None,
    ) -> int:
        """How many events `page` would walk through from `after` on (what is left to page).

        Counted a page at a time here, in bounded memory; a backend overrides it with a COUNT."""
        names = None if states is None else list(states)
        total, cursor = 0, after
        while batch := self.page(states=names, pipeline=pipeline, source=source, after=cursor, limit=10_000):
            total, cursor = total + len(batch), batch[-1].seq
        return total

    @abstractmethod
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
        """Up to `limit` events, newest landing first, landed in [since, until), with `seq` below
        `before` (the previous page's last): keyset paging backwards, for the dashboard."""

    @abstractmethod
    def search_count(
        self,
        *,
        states: Iterable[str] | None = None,
        pipeline: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many events `search` pages through with these filters."""

    @abstractmethod
    def histogram(self, column: str, *, since: float, bucket: float, states: Iterable[str] | None = None) -> list[Bucket]:
        """Events per pipeline per `bucket` seconds of `column` (landed_at, committed_at or
        updated_at) from `since` on, counted by the database; empty buckets are left out."""

    @abstractmethod
    def gauges(self, tables: list[str]) -> LedgerGauges:
        """What a /metrics scrape reads from the ledger, in one indexed query: per pipeline the
        pending events and the oldest one's landing, the dead-lettered events; per table of
        `tables`, its last commit."""

    @abstractmethod
    def pending_count(self, pipelines: Iterable[str] | None = None) -> int:
        """Events that still need work: landed, queued, running, retrying."""


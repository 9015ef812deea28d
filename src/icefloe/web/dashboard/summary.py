"""What the overview shows (`status` and the last hour's `activity`), counted live while that is
cheap, and kept and refreshed beside the requests once it is not.

`status` groups every event in the ledger: with a million events that is seconds of SQLite
work, far past what a page may take. So when counting took longer than `LIVE_BUDGET`, the
overview shows the last count (the page says when it was made and how long it took) and, once
that is older than `MAX_AGE`, one background thread counts again; never two at once, and never
on the request's time. A small ledger is counted on every request, as `icefloe status` does.
The background count reads through a ledger connection of its own: the app's connection serves
one query at a time, and a count of seconds on it would hold up every other page.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from icefloe.observe.activity import Series, activity
from icefloe.observe.status import status
from icefloe.runtime import Runtime

__all__ = ["LIVE_BUDGET", "MAX_AGE", "Summaries", "Summary"]

# a count that takes longer than this is not made again for every request
LIVE_BUDGET = 0.25
# ... and is made again in the background once it is this old
MAX_AGE = 15.0


@dataclass(frozen=True)
class Summary:
    rows: list[dict[str, Any]]
    start: float  # the activity series' first bucket
    series: list[Series]
    made_at: float
    took: float  # seconds the count took
    window: float
    bucket: float

    @property
    def live(self) -> bool:
        return self.took <= LIVE_BUDGET


def summarise(rt: Runtime, *, window: float, bucket: float) -> Summary:
    began = time.perf_counter()
    made_at = time.time()
    rows = status(rt)
    start, series = activity(rt, window=window, bucket=bucket, now=made_at)
    return Summary(rows, start, series, made_at, time.perf_counter() - began, window, bucket)


class Summaries:
    """One per app: the last summary, and the thread refreshing it (at most one)."""

    def __init__(self, rt: Runtime, *, window: float, bucket: float) -> None:
        self.rt, self.window, self.bucket = rt, window, bucket
        self._lock = threading.Lock()
        self._last: Summary | None = None
        self._refreshing: threading.Thread | None = None
        self._made = 0  # counts made so far
        self._own: Runtime | None = None  # the background count's ledger and catalog

    def get(self) -> Summary:
        with self._lock:
            last = self._last
        if last is None or last.live:
            return self._count(self.rt)
        # the first count pays for opening the catalog (imports, connections): whether counting
        # is cheap is judged again by the second, made at once
        if time.time() - last.made_at > MAX_AGE or self._made == 1:
            self._refresh_in_background()
        return last

    def _count(self, rt: Runtime) -> Summary:
        made = summarise(rt, window=self.window, bucket=self.bucket)
        with self._lock:
            self._made += 1
            if self._last is None or made.made_at >= self._last.made_at:
                self._last = made
        return made

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return
            self._refreshing = threading.Thread(target=self._quietly, name="icefloe-overview", daemon=True)
            self._refreshing.start()

    def _counting_runtime(self) -> Runtime:
        rt = self.rt
        if ":memory:" in rt.config.ledger:  # a second connection would open another, empty database
            return rt
        if self._own is None:
            self._own = Runtime(rt.config, rt.root, sources=rt.sources, router=rt.router, quarantine=rt.quarantine)
        return self._own

    def _quietly(self) -> None:
        import logging

        try:
            self._count(self._counting_runtime())
        except Exception:
            logging.getLogger(__name__).exception("counting the overview failed; it shows the last count")

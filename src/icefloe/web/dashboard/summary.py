"""What the overview shows: `status` and the last hour's `activity`, counted on every request.

Both read the ledger's counters and indexed ranges (`Ledger.tallies`, `gauges`, `histogram`),
whose cost does not grow with the events the ledger holds, so a page of a million-event ledger
is counted in milliseconds and nothing is kept between requests: every overview shows the
ledger as it is when asked. (It used to show an older count, refreshed in the background,
once counting took longer than 0.25 s; the first count of a fresh server always did, as it
paid for the imports and the catalog, so the pages after it showed that count, not the
ledger. `icefloe serve` now pays for those before it listens: `web.warm`.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from icefloe.observe.activity import Series, activity
from icefloe.observe.status import status
from icefloe.runtime import Runtime

__all__ = ["Summary", "summarise"]


@dataclass(frozen=True)
class Summary:
    rows: list[dict[str, Any]]
    start: float  # the activity series' first bucket
    series: list[Series]
    made_at: float
    took: float  # seconds the count took
    window: float
    bucket: float


def summarise(rt: Runtime, *, window: float, bucket: float) -> Summary:
    began = time.perf_counter()
    made_at = time.time()
    rows = status(rt)
    start, series = activity(rt, window=window, bucket=bucket, now=made_at)
    return Summary(rows, start, series, made_at, time.perf_counter() - began, window, bucket)

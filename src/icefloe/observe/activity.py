"""The last hour per pipeline, minute by minute: events landed, committed (and their rows) and
failed. Counted by the ledger with GROUP BY (`Ledger.histogram`), so the cost does not grow with
the events shown: the dashboard's overview charts draw these series."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from icefloe.runtime import Runtime

__all__ = ["Series", "activity"]

# what a failure is on the chart: an attempt that failed (retrying) or gave up (dead)
_FAILED = ("retrying", "dead")


@dataclass
class Series:
    """One pipeline's counts per bucket, oldest first; every list has `buckets` entries."""

    pipeline: str
    landed: list[int] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def activity(rt: Runtime, *, window: float = 3600.0, bucket: float = 60.0, now: float | None = None) -> tuple[float, list[Series]]:
    """(start time, one series per configured pipeline) over the last `window` seconds."""
    if bucket <= 0 or window < bucket:
        raise ValueError(f"window {window} must hold at least one bucket of {bucket} s")
    count = int(window // bucket)
    start = (now if now is not None else time.time()) - count * bucket
    series = {name: Series(name, *([0] * count for _ in range(4))) for name in rt.config.pipelines}
    ledger = rt.ledger
    lists = (
        (ledger.histogram("landed_at", since=start, bucket=bucket), "landed", False),
        (ledger.histogram("committed_at", since=start, bucket=bucket, states=["committed"]), "committed", True),
        (ledger.histogram("updated_at", since=start, bucket=bucket, states=_FAILED), "failed", False),
    )
    for buckets, name, with_rows in lists:
        for b in buckets:
            row = series.get(b.pipeline or "")
            if row is None or not 0 <= b.index < count:  # unrouted, a removed pipeline, the future
                continue
            getattr(row, name)[b.index] += b.events
            if with_rows:
                row.rows[b.index] += b.rows_out
    return start, list(series.values())

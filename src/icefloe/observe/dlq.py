"""`dlq list`: dead events a page at a time, in landing order, and how many are left after the page.

A dead-letter queue can hold a whole day's files after a bad config; listing reads one page, and
the next page starts after the last one's `seq` (keyset paging: page 50 costs what page 1 does).
"""

from __future__ import annotations

from dataclasses import dataclass
from icefloe.ledger.base import Event
from icefloe.runtime import Runtime

__all__ = ["DEAD_LETTER_PAGE", "DeadLetterPage", "dead_letter_page"]

DEAD_LETTER_PAGE = 100


@dataclass(frozen=True)
class DeadLetterPage:
    events: list[Event]
    more: int  # dead events after this page

    @property
    def next_after(self) -> int | None:
        """What `after` takes for the next page (None: this was the last)."""
        return self.events[-1].seq if self.more and self.events else None


def dead_letter_page(rt: Runtime, *, limit: int = DEAD_LETTER_PAGE, after: int | None = None) -> DeadLetterPage:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    events = rt.ledger.page(states=["dead"], after=after, limit=limit)
    # a short page is the last one: no need to count
    more = rt.ledger.count(states=["dead"], after=events[-1].seq) if len(events) == limit else 0
    return DeadLetterPage(events, more)

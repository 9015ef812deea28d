"""A reconcile pass over a source: its whole listing, paged, compared with the ledger's stamps.

Why a full pass and not a start-after cursor: a cursor by key name only finds keys after it, so
an object rewritten later under an older key (same key, new ETag) would never be seen again
(Dagster #22892). Every pass lists every key, a page at a time, and one batched stamp lookup
per page decides what changed: an unchanged object costs its share of one LIST and one ledger
query, never a HEAD or a GET, and the ledger keeps the stamps for as long as the objects exist
(no window, no 7-day cap).

What the ledger keeps besides (`listing_position`) is where the pass had got to. A pass starts
there and goes round once: to the end of the listing, then from the first key back to where it
began. A restart in the middle of a big pass therefore carries on with the keys it had not
reached (the ones most likely new) instead of listing again from the first, and still sees
every key before it is done, so a rewrite anywhere is found within one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from icefloe.sources.base import ObjectRef, Source

__all__ = ["Page", "ring"]


@dataclass(frozen=True)
class Page:
    refs: list[ObjectRef]
    # where the next pass starts once these refs have landed (None: at the first key)
    position: str | None
    done: bool


def ring(source: Source, origin: str | None, after: str | None, limit: int) -> Iterator[Page]:
    """The rest of a pass over `source` that began at `origin` and has listed up to `after`: a
    new pass has both at the ledger's `listing_position`; one its `budget` cut short carries on."""
    if origin is None or (after is not None and after >= origin):
        while True:  # to the end of the listing
            page = source.list(after, limit)
            if page.cursor is not None:
                yield Page(page.refs, page.cursor, False)
                after = page.cursor
                continue
            # at the end the position is the first key again: a restart from here is a full pass
            yield Page(page.refs, None, origin is None)
            if origin is None:
                return
            after = None
            break
    while True:  # from the first key back to where the pass began
        page = source.list(after, limit)
        refs = [r for r in page.refs if r.key <= origin]
        if page.cursor is None or page.cursor >= origin:
            yield Page(refs, None, True)
            return
        yield Page(refs, page.cursor, False)
        after = page.cursor

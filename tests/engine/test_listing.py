"""A reconcile pass goes round once from wherever it starts: every key exactly once, whatever the
start, the page size, or where a budget cuts it."""

from __future__ import annotations

import pytest

from icefloe.engine.listing import ring
from icefloe.sources.memory import MemorySource

KEYS = [f"k{n:02d}" for n in range(10)]


def _source() -> MemorySource:
    source = MemorySource("m")
    for key in KEYS:
        source.write(key, b"x")
    return source


@pytest.mark.parametrize("limit", [1, 3, 10, 1000])
@pytest.mark.parametrize("start", [None, "k00", "k04", "k09", "k99", "a"])
def test_a_pass_from_any_position_sees_every_key_once(start: str | None, limit: int) -> None:
    pages = list(ring(_source(), start, start, limit))
    seen = [r.key for page in pages for r in page.refs]
    assert sorted(seen) == KEYS and len(seen) == len(set(seen))
    assert pages[-1].done and pages[-1].position is None
    assert not any(page.done for page in pages[:-1])
    if start is not None and start < KEYS[-1]:
        assert seen[0] > start  # the keys not reached yet come first


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_pass_cut_after_any_page_goes_on_to_cover_the_rest_once(cut: int) -> None:
    source, start = _source(), "k05"
    first = list(ring(source, start, start, 2))[:cut]
    rest = list(ring(source, start, first[-1].position, 2)) if not first[-1].done else []
    seen = [r.key for page in first + rest for r in page.refs]
    assert sorted(seen) == KEYS and len(seen) == len(set(seen))

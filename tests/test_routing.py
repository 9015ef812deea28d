from __future__ import annotations

import pytest

from icefloe.config import RouteConfig
from icefloe.routing import Router, glob_to_regex


@pytest.mark.parametrize(
    ("pattern", "key", "hit"),
    [
        ("orders/**/*.csv", "orders/a.csv", True),
        ("orders/**/*.csv", "orders/2026/11/a.csv", True),
        ("orders/**/*.csv", "orders/a.json", False),
        ("events/*.ndjson", "events/x/a.ndjson", False),
        ("*.csv", "a.csv", True),
        ("**", "deep/er/file", True),
        ("a?.csv", "ab.csv", True),
        ("a?.csv", "a/.csv", False),
    ],
)
def test_glob_matching(pattern: str, key: str, hit: bool) -> None:
    assert bool(glob_to_regex(pattern).match(key)) is hit


def test_fan_out_in_route_order_without_repeats() -> None:
    router = Router([
        RouteConfig(source="s", match="*.ndjson", pipeline=["a", "b"]),
        RouteConfig(source="s", match="**", pipeline="a"),
        RouteConfig(source="t", match="**", pipeline="c"),
    ])  # fmt: skip
    assert router.match("s", "x.ndjson") == ["a", "b"]
    assert router.match("s", "x.csv") == ["a"]
    assert router.match("u", "x.csv") == []

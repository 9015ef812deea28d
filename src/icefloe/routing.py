"""Routes: which pipelines an object landing on a source goes to (fan-out when several match)."""

from __future__ import annotations

import re
from functools import lru_cache

from icefloe.config import RouteConfig

__all__ = ["Router", "glob_to_regex"]


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`*` and `?` stay inside one path segment, `**/` spans any number of folders (also none)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


class Router:
    def __init__(self, routes: list[RouteConfig]) -> None:
        self.routes = routes

    def match(self, source: str, key: str) -> list[str]:
        """Pipelines for this object, in route order, each once. Empty means unrouted."""
        found: list[str] = []
        for route in self.routes:
            if route.source == source and glob_to_regex(route.match).match(key):
                found += [p for p in route.pipeline if p not in found]
        return found

"""`trace`: one event from landing to snapshot, every step with its timing.

The event is named by its id (or a unique prefix), or by the object it came from: `source:key`,
a key, a path under a source, or a file name. An object can have several events (each landed
version, each pipeline it fans out to): the newest is traced and all of them are listed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from icefloe.errors import IcefloeError, NotFoundError
from icefloe.ledger.base import Event
from icefloe.runtime import Runtime

__all__ = ["LISTED", "events_for_object", "trace"]

# events of one object listed (versions x fan-out); the newest, when it has had more
LISTED = 100


def trace(rt: Runtime, ref: str) -> dict[str, Any]:
    found, ambiguous = None, None
    if re.fullmatch(r"[0-9a-f]+", ref):
        try:
            found = rt.ledger.find(ref)
        except IcefloeError as exc:  # a prefix of several ids, unless it is also an object's name
            ambiguous = exc
    others: list[Event] = []
    if found is None:
        others = events_for_object(rt, ref)
        if not others and ambiguous is not None:
            raise ambiguous
        if not others:
            raise NotFoundError(f"no event {ref!r}, nor an object by that name (give an event id, source:key, a key or a path)")
        found = others[0]
    event = found
    steps = rt.ledger.steps(event.id)
    origin = steps[0].started_at if steps else event.landed_at
    return {
        "event": event.to_dict(),
        "steps": [
            {
                "step": s.step,
                "at_ms": round((s.started_at - origin) * 1000, 2),
                "took_ms": round(s.millis, 2),
                "detail": " ".join(f"{k}={v}" for k, v in s.detail.items()),
            }
            for s in steps
        ],
        "total_ms": round(((event.committed_at or steps[-1].ended_at) - origin) * 1000, 2) if steps else None,
        # every event of the object, newest first, when it has more than the one traced
        "events": [_summary(e) for e in others] if len(others) > 1 else [],
    }


def events_for_object(rt: Runtime, ref: str) -> list[Event]:
    """The events of the object `ref` names (its newest `LISTED`), newest landing first."""
    wanted = _object_keys(rt, ref)
    matched: dict[str, Event] = {}
    # looked up by key in the ledger: an exact key comes before the keys merely ending in it
    for key in dict.fromkeys(key for _, key in wanted):
        for e in rt.ledger.find_by_name(key, limit=LISTED):
            if (e.source, e.key) in wanted or (None, e.key) in wanted:
                matched.setdefault(e.id, e)
    name = ref.strip("/")
    if not matched and name and "/" not in name:  # a bare file name: the objects whose key ends in it
        matched = {e.id: e for e in rt.ledger.find_by_name(name, limit=LISTED) if e.key.rsplit("/", 1)[-1] == name}
    return sorted(matched.values(), key=lambda e: (e.landed_at, e.id), reverse=True)[:LISTED]


def _object_keys(rt: Runtime, ref: str) -> set[tuple[str | None, str]]:
    keys: set[tuple[str | None, str]] = {(None, ref)}
    source, sep, key = ref.partition(":")
    if sep and source in rt.config.sources:
        keys.add((source, key))
    for name, src in rt.sources.items():
        for path in (Path(ref), rt.root / ref):
            try:
                keys.add((name, src.key_for(path)))
            except (IcefloeError, OSError, ValueError):  # not under this source
                continue
    return keys


def _summary(e: Event) -> dict[str, Any]:
    return {"event": e.id, "object": e.object_ref, "pipeline": e.pipeline, "state": e.state, "landed_at": e.landed_at}

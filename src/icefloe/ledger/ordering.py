"""The ordering rules of `lease`, as plain filters on the lease query.

An event of an ordered pipeline waits while an older event of its order group is retrying or
held by another live lease; an event of an `ordered_by_key` pipeline waits only for older ones
of the same object. The events that hold others back are few (retrying, or running elsewhere),
so they are read once per lease and become `NOT (pipeline = ? AND seq > ?)` clauses. A correlated
NOT EXISTS per candidate row said the same, but on PostgreSQL its cost grew with every candidate
times every not yet vacuumed row version (2 s per lease after 20,000 commits on a busy server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icefloe.ledger.dialect import DB

__all__ = ["order_filter"]

# held by another live lease, or waiting to retry: an older event that must commit first
BLOCKING = "(o.state = 'retrying' OR (o.state = 'running' AND o.lease_owner != ? AND o.lease_expires_at >= ?))"
# past this many objects holding others back (a catalog outage retrying everything), one
# correlated subquery is shorter than a clause each
_MAX_KEYS = 100


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def order_filter(
    db: DB, strict: list[str], by_key: list[str], groups: Mapping[str, str], owner: str, now: float
) -> tuple[str, list[Any]]:
    """SQL (`AND ...`) and its parameters that keep held-back events out of a lease."""
    names = list(dict.fromkeys(strict + by_key))
    if not names:
        return "", []
    rows = db.execute(
        f"SELECT o.pipeline, o.source, o.key, o.seq FROM events o WHERE o.pipeline IN ({_marks(names)}) AND {BLOCKING}",
        [*names, owner, now],
    ).fetchall()
    if not rows:
        return "", []
    where, params = "", []
    members: dict[str, set[str]] = {}  # order group -> its ordered pipelines
    for name in strict:
        if name in groups:
            members.setdefault(groups[name], set()).add(name)
    first: dict[str, int] = {}  # ordered pipeline -> seq of the oldest event holding its newer ones
    keyed: dict[tuple[str, str, str], int] = {}  # (source, key, pipeline) -> the same, per object
    for pipeline, source, key, seq in rows:
        if pipeline in strict:
            for held in members.get(groups[pipeline], {pipeline}) if pipeline in groups else {pipeline}:
                first[held] = min(first.get(held, seq), seq)
        if pipeline in by_key:
            k = (source, key, pipeline)
            keyed[k] = min(keyed.get(k, seq), seq)
    for pipeline, seq in first.items():
        where += " AND NOT (pipeline = ? AND seq > ?)"
        params += [pipeline, seq]
    if len(keyed) > _MAX_KEYS:
        where += (
            f" AND NOT (pipeline IN ({_marks(by_key)}) AND EXISTS (SELECT 1 FROM events o WHERE {BLOCKING}"
            " AND o.source = events.source AND o.key = events.key AND o.pipeline = events.pipeline AND o.seq < events.seq))"
        )
        params += [*by_key, owner, now]
    else:
        for (source, key, pipeline), seq in keyed.items():
            where += " AND NOT (source = ? AND key = ? AND pipeline = ? AND seq > ?)"
            params += [source, key, pipeline, seq]
    return where, params

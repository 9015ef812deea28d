"""Durable event state behind one seam; pick a backend by URI scheme."""

from __future__ import annotations

from pathlib import Path

from icefloe.errors import ConfigError
from icefloe.ledger.base import (
    STATES,
    TERMINAL,
    TRANSITIONS,
    Event,
    GroupCount,
    Job,
    JobState,
    Ledger,
    State,
    Step,
    event_id,
    owner_id,
)

__all__ = ["Event", "GroupCount", "Job", "JobState", "Ledger", "State", "STATES", "Step", "TERMINAL", "TRANSITIONS", "event_id", "owner_id", "open_ledger"]


def open_ledger(uri: str, root: Path) -> Ledger:
    """`sqlite:///relative/or/absolute.db` (relative to the project root) or `sqlite:///:memory:`."""
    scheme, _, rest = uri.partition("://")
    if scheme == "sqlite":
        from icefloe.ledger.sqlite import SqliteLedger

        path = rest[1:] if rest.startswith("/") else rest
        if path == ":memory:":
            return SqliteLedger(":memory:")
        if rest.startswith("//"):  # sqlite:////abs/path
            return SqliteLedger(rest[1:])
        return SqliteLedger(root / path)
    raise ConfigError(f"unknown ledger backend {scheme!r} in {uri!r}; available: sqlite (postgresql and nats are planned)")

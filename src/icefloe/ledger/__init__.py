"""Durable event state behind one seam; pick a backend by URI scheme."""

from __future__ import annotations

import re
from collections.abc import Callable
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

__all__ = [
    "Event", "GroupCount", "Job", "JobState", "Ledger", "State", "STATES", "Step", "TERMINAL", "TRANSITIONS",
    "event_id", "ledger_uri_problem", "owner_id", "open_ledger", "redacted",
]  # fmt: skip


def redacted(uri: str) -> str:
    """The URI without its password: it goes into error messages and logs."""
    uri = re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", uri)  # libpq takes it as a parameter too


def _sqlite(uri: str, rest: str, root: Path, upgrade: bool) -> Ledger:
    from icefloe.ledger.sqlite import SqliteLedger

    path = rest[1:] if rest.startswith("/") else rest
    if path == ":memory:":
        return SqliteLedger(":memory:", upgrade=upgrade)
    if rest.startswith("//"):  # sqlite:////abs/path
        return SqliteLedger(rest[1:], upgrade=upgrade)
    return SqliteLedger(root / path, upgrade=upgrade)


def _postgres(uri: str, rest: str, root: Path, upgrade: bool) -> Ledger:
    from icefloe.ledger.postgres import PostgresLedger

    return PostgresLedger("postgresql://" + rest, upgrade=upgrade)


# URI scheme -> backend; postgres:// is the alias libpq also accepts
BACKENDS: dict[str, Callable[[str, str, Path, bool], Ledger]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def ledger_uri_problem(uri: str) -> str | None:
    """Why `open_ledger` would refuse this URI, known without opening it (checked at load)."""
    scheme = uri.partition("://")[0]
    if scheme in BACKENDS:
        return None
    return f"unknown ledger backend {scheme!r} in {redacted(uri)!r}; available: sqlite, postgresql"


def open_ledger(uri: str, root: Path, *, upgrade: bool = True) -> Ledger:
    """`sqlite:///relative/or/absolute.db` (relative to the project root), `sqlite:///:memory:`,
    or `postgresql://user@host:port/db`. Pending schema migrations are applied unless `upgrade`
    is False (then only `schema_status`/`upgrade` are safe to call on an old ledger)."""
    scheme, _, rest = uri.partition("://")
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(ledger_uri_problem(uri) or f"unknown ledger backend {scheme!r}")
    return backend(uri, rest, root, upgrade)

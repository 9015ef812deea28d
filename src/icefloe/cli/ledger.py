"""`icefloe ledger version|upgrade`: the ledger's schema migrations."""

from __future__ import annotations

import time
from typing import Any

import click

from icefloe.cli.common import format_option, open_project, output, project_options
from icefloe.errors import ConfigError
from icefloe.ledger import open_ledger
from icefloe.ledger.migrations import LATEST, SchemaStatus
from icefloe.ledger.sql import SqlLedger

__all__ = ["COMMANDS"]


@click.group()
def ledger() -> None:
    """The ledger's schema: which migrations it has, and applying the rest."""


def _open(project_dir: str, env: str | None) -> SqlLedger:
    # the config only: opening the project's ledger would apply the migrations by itself
    with open_project(project_dir, env) as project:
        uri, root = project.config.ledger, project.root
    found = open_ledger(uri, root, upgrade=False)
    if not isinstance(found, SqlLedger):
        found.close()
        raise ConfigError(f"the ledger {uri!r} has no schema versions")
    return found


def _rows(status: SchemaStatus) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"version": v, "state": "applied", "applied_at": _when(at), "description": d} for v, d, at in status.applied
    ]
    rows += [{"version": m.version, "state": "pending", "applied_at": None, "description": m.description} for m in status.pending]
    return rows


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@ledger.command()
@project_options
@format_option
def version(project_dir: str, env: str | None, fmt: str) -> None:
    """The ledger's schema version and every migration, applied or pending (changes nothing)."""
    led = _open(project_dir, env)
    try:
        status = led.schema_status()
    finally:
        led.close()
    out = output(fmt)
    out.rows(_rows(status), title=f"ledger schema version {status.version} (this icefloe: {LATEST})")
    if status.pending and fmt == "table":
        out.message(f"{len(status.pending)} migration(s) pending: `icefloe ledger upgrade` (or any command that opens the ledger) applies them")


@ledger.command()
@project_options
@format_option
def upgrade(project_dir: str, env: str | None, fmt: str) -> None:
    """Apply pending migrations now, in one transaction (workers opening the ledger do it too)."""
    led = _open(project_dir, env)
    try:
        applied = led.upgrade()
        status = led.schema_status()
    finally:
        led.close()
    out = output(fmt)
    if fmt != "table":
        out.rows([{"version": m.version, "description": m.description} for m in applied])
    elif applied:
        out.message(f"applied {len(applied)} migration(s); the ledger is at version {status.version}")
    else:
        out.message(f"nothing to do: the ledger is at version {status.version}")


COMMANDS = [ledger]

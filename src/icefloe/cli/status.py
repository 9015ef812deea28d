"""`icefloe status` and `icefloe trace`."""

from __future__ import annotations

import time

import click

from icefloe.cli.common import format_option, open_project, output, project_options

__all__ = ["COMMANDS"]

# file health and maintenance: a second table, so neither folds into unreadable columns
_HEALTH = ("data_files", "small_files", "small_file_ratio", "manifests", "metadata_mb", "data_mb", "last_maintained", "maintenance")


@click.command()
@project_options
@format_option
def status(project_dir: str, env: str | None, fmt: str) -> None:
    """Backlog, lag, last commit and failures per source, pipeline and table."""
    with open_project(project_dir, env) as project:
        rows = project.status()
    out = output(fmt)
    if fmt != "table":
        out.rows(rows)
        return
    for kind in ("source", "pipeline", "worker"):
        out.rows([{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == kind], title=f"{kind}s")
    tables = [r for r in rows if r["kind"] == "table"]
    down = next((r["unavailable"] for r in tables if r.get("unavailable")), None)
    if down:  # the ledger's sections above stand; the catalog's cannot be read right now
        out.message(f"tables: unavailable ({down})")
        tables = [r for r in tables if not r.get("unavailable")]
        if not tables:
            return
    out.rows([{k: v for k, v in r.items() if k not in _HEALTH and k != "kind"} for r in tables], title="tables")
    out.rows([{"name": r["name"], **{k: r[k] for k in _HEALTH if k in r}} for r in tables if r.get("exists")], title="table health")


@click.command()
@project_options
@format_option
@click.argument("ref", metavar="EVENT_OR_OBJECT")
def trace(project_dir: str, env: str | None, fmt: str, ref: str) -> None:
    """One event from landing to snapshot, every step with its timing.

    EVENT_OR_OBJECT is an event id (or a unique prefix), or the object it came from: source:key,
    a key, a path under a source, or a file name. An object with several events (versions,
    fan-out) has its newest traced and all of them listed, newest first."""
    with open_project(project_dir, env) as project:
        found = project.trace(ref)
    out = output(fmt)
    if fmt != "table":
        out.rows(found["steps"])
        return
    ev = found["event"]
    out.message(f"event {ev['id']}  {ev['source']}:{ev['key']} -> {ev['pipeline']}  [{ev['state']}]")
    if ev.get("error"):
        out.message(f"error: {ev['error']}")
    out.rows(found["steps"], title=f"trace ({found['total_ms']} ms landing to {ev['state']})")
    if found["events"]:
        out.rows([{**e, "landed_at": _iso(e["landed_at"])} for e in found["events"]], title="events of this object, newest first")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


COMMANDS = [status, trace]

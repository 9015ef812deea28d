"""`icefloe status` and `icefloe trace`."""

from __future__ import annotations

import click

from icefloe.cli.common import format_option, open_project, output, project_options

__all__ = ["COMMANDS"]


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
    for kind in ("source", "pipeline", "table"):
        out.rows([{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == kind], title=f"{kind}s")


@click.command()
@project_options
@format_option
@click.argument("event_id")
def trace(project_dir: str, env: str | None, fmt: str, event_id: str) -> None:
    """One event from landing to snapshot, every step with its timing."""
    with open_project(project_dir, env) as project:
        found = project.trace(event_id)
    out = output(fmt)
    if fmt != "table":
        out.rows(found["steps"])
        return
    ev = found["event"]
    out.message(f"event {ev['id']}  {ev['source']}:{ev['key']} -> {ev['pipeline']}  [{ev['state']}]")
    if ev.get("error"):
        out.message(f"error: {ev['error']}")
    out.rows(found["steps"], title=f"trace ({found['total_ms']} ms landing to {ev['state']})")


COMMANDS = [status, trace]

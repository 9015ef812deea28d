"""`icefloe tables` and `icefloe history`."""

from __future__ import annotations

import click

from icefloe.cli.common import format_option, open_project, output, project_options

__all__ = ["COMMANDS"]


@click.command()
@project_options
@format_option
def tables(project_dir: str, env: str | None, fmt: str) -> None:
    """The lake's tables with rows, files and snapshots."""
    with open_project(project_dir, env) as project:
        output(fmt).rows(project.tables(), title="tables")


@click.command()
@project_options
@format_option
@click.argument("table")
def history(project_dir: str, env: str | None, fmt: str, table: str) -> None:
    """Snapshots of TABLE, each with the events it holds, after its file health and last maintenance."""
    with open_project(project_dir, env) as project:
        snapshots = project.history(table)
        health = project.table_health(table)
    out = output(fmt)
    if fmt == "table":
        out.rows([health], title=f"{table}: files and maintenance")
    out.rows(snapshots, title=f"history of {table}")


COMMANDS = [tables, history]

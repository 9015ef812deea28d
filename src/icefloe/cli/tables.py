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
    """Snapshots of TABLE, each with the events it holds."""
    with open_project(project_dir, env) as project:
        output(fmt).rows(project.history(table), title=f"history of {table}")


COMMANDS = [tables, history]

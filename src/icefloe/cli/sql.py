"""`icefloe sql`: DuckDB over the Iceberg tables and the ledger."""

from __future__ import annotations

import click

from icefloe.cli.common import format_option, open_project, output, project_options

__all__ = ["COMMANDS"]


@click.command()
@project_options
@format_option
@click.option("--as-of", default=None, help="Snapshot id or timestamp (ISO 8601) to read the tables at.")
@click.argument("query")
def sql(project_dir: str, env: str | None, fmt: str, as_of: str | None, query: str) -> None:
    """Run a SQL QUERY; tables by name (sales.orders), the ledger as icefloe.events."""
    with open_project(project_dir, env) as project:
        result = project.sql(query, as_of=as_of)
    output(fmt).rows(result.to_pylist())


COMMANDS = [sql]

"""Options every command shares: -p/--project, --env, --format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from icefloe.cli.output import FORMATS, Output, make_output
from icefloe.project import Project

__all__ = ["project_options", "format_option", "open_project", "output"]


def project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--env", "env", default=None, help="Overlay environments.<name> from icefloe.yaml.")(func)
    return click.option(
        "-p", "--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
        help="Project folder (holds icefloe.yaml).",
    )(func)  # fmt: skip


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)(func)


def open_project(project_dir: str, env: str | None) -> Project:
    return Project(project_dir, env=env)


def output(fmt: str) -> Output:
    return make_output(fmt)

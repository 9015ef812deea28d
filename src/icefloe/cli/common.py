"""Options every command shares: -p/--project, --env, --set, --format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import yaml

from icefloe.cli.output import FORMATS, Output, make_output
from icefloe.project import Project

__all__ = ["project_options", "format_option", "open_project", "output"]


def _store_overrides(ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> None:
    overrides: dict[str, Any] = {}
    for item in values:
        dotted, sep, raw = item.partition("=")
        keys = [k for k in dotted.split(".") if k]
        if not sep or not keys:
            raise click.BadParameter(f"{item!r}: use SECTION.KEY=VALUE, e.g. pipelines.orders.batch.max_rows=5000")
        target = overrides
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = yaml.safe_load(raw) if raw else raw
    ctx.meta["icefloe.overrides"] = overrides


def project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--set", "overrides", multiple=True, expose_value=False, callback=_store_overrides, metavar="KEY=VALUE",
        help="Override a config value (after the file and ICEFLOE__ env vars), e.g. catalog=sqlite:///x.db.",
    )(func)  # fmt: skip
    func = click.option("--env", "env", default=None, help="Overlay environments.<name> from icefloe.yaml.")(func)
    return click.option(
        "-p", "--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
        help="Project folder (holds icefloe.yaml).",
    )(func)  # fmt: skip


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)(func)


def open_project(project_dir: str, env: str | None) -> Project:
    ctx = click.get_current_context(silent=True)
    overrides = ctx.meta.get("icefloe.overrides") if ctx is not None else None
    return Project(project_dir, env=env, overrides=overrides or None)


def output(fmt: str) -> Output:
    return make_output(fmt)

"""`icefloe init` and `icefloe demo`."""

from __future__ import annotations

import click

from icefloe.scaffold import init_project

__all__ = ["COMMANDS"]


@click.command()
@click.argument("folder")
def init(folder: str) -> None:
    """Create FOLDER with icefloe.yaml, landing/ and an example pipeline."""
    root = init_project(folder)
    click.echo(f"created {root}/icefloe.yaml; drop files into {root}/landing/ and run: icefloe run -p {root}")


@click.command()
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Build the demo here and keep it.")
def demo(keep: str | None) -> None:
    """Build a sample project, run it, and show what happened (about 20 s)."""
    from icefloe.demo import run_demo

    run_demo(keep)


COMMANDS = [init, demo]

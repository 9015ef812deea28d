"""The `icefloe` command: thin wrappers over `icefloe.Project`, one module per noun.

Exit codes: 0 ok, 1 failed, 2 bad usage or configuration, 3 done but some events dead-lettered,
4 not found, 130 stopped (Ctrl-C, SIGTERM) before `run --once` or `dlq replay --now` was done.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from icefloe.errors import ConfigError, IcefloeError, NotFoundError

__all__ = ["EXIT_DEAD", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE", "cli", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEAD, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="json: one object a line, with event_id, pipeline, table and trace_id.",
)  # fmt: skip
@click.version_option(package_name="icefloe")
def cli(verbose: int, log_format: str) -> None:
    """icefloe: event-driven ingestion into Iceberg tables, exactly once."""
    from icefloe.observe.logs import configure_logging

    level = logging.WARNING - 10 * verbose
    configure_logging(max(level, logging.DEBUG), log_format)


def _register() -> None:
    from icefloe.cli import dlq, init, ledger, maintain, run, serve, sql, status, tables, token

    for module in (init, run, sql, status, tables, dlq, maintain, ledger, serve, token):
        for command in module.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    _register()
    try:
        code = cli.main(args=argv, prog_name="icefloe", standalone_mode=False)
        # with standalone_mode off, click returns a command's Exit code instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
        return code
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except NotFoundError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    except IcefloeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - say what broke in one line; -v logs the traceback
        logging.getLogger("icefloe").debug("unexpected error", exc_info=True)
        click.echo(f"error: {type(exc).__name__}: {exc} (run with -vv for the traceback)", err=True)
        sys.exit(EXIT_FAILED)

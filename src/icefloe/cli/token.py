"""`icefloe token new`: a fresh API/dashboard token, and the line that goes in icefloe.yaml."""

from __future__ import annotations

import click

from icefloe.config.serve import SCOPE_PATTERN

__all__ = ["COMMANDS"]


@click.group("token")
def token() -> None:
    """Bearer tokens for `icefloe serve` (the HTTP API and the dashboard)."""


@token.command("new")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, default=("read",), show_default=True,
              help="read, operate, ingest or ingest:NAME (repeat for several).")  # fmt: skip
def new(name: str, scopes: tuple[str, ...]) -> None:
    """Print a new token NAME (shown once: only its hash is kept) and its serve.tokens entry."""
    from icefloe.web.auth import hash_token, new_token  # starlette: only this command needs it

    bad = [s for s in scopes if not SCOPE_PATTERN.match(s)]
    if bad:
        raise click.BadParameter(f"unknown scope(s) {bad}: use read, operate, ingest or ingest:NAME", param_hint="--scope")
    secret = new_token()
    click.echo(f"token (shown once, keep it secret): {secret}", err=True)
    click.echo("add under serve.tokens in icefloe.yaml:", err=True)
    click.echo(f"  - {{name: {name}, hash: '{hash_token(secret)}', scopes: [{', '.join(scopes)}]}}")


COMMANDS = [token]

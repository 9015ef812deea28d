"""`icefloe dlq list|show|replay|discard`: the dead-letter queue."""

from __future__ import annotations

import shlex
import time
from typing import Any

import click

from icefloe.cli import EXIT_DEAD
from icefloe.cli.common import format_option, open_project, output, project_options
from icefloe.observe.dlq import DEAD_LETTER_PAGE

__all__ = ["COMMANDS"]


@click.group()
def dlq() -> None:
    """Dead events: see why, replay after a fix, or discard."""


@dlq.command("list")
@project_options
@format_option
@click.option("--limit", type=click.IntRange(min=1), default=DEAD_LETTER_PAGE, show_default=True, help="Events per page.")
@click.option("--after", type=click.IntRange(min=0), default=None, metavar="SEQ", help="Start after this seq (the hint under a page gives it).")
def list_(project_dir: str, env: str | None, fmt: str, limit: int, after: int | None) -> None:
    """Dead events with their errors, a page at a time in landing order."""
    with open_project(project_dir, env) as project:
        page = project.dead_letter_page(limit=limit, after=after)
    rows = [
        {"seq": e.seq, "event": e.id, "object": e.object_ref, "pipeline": e.pipeline, "attempts": e.attempts,
         "kind": e.error_kind, "error": e.error}
        for e in page.events
    ]  # fmt: skip
    out = output(fmt)
    out.rows(rows, title="dead-letter queue")
    if page.next_after is not None:
        where = (f" -p {shlex.quote(project_dir)}" if project_dir != "." else "") + (f" --env {shlex.quote(env)}" if env else "")
        sized = f" --limit {limit}" if limit != DEAD_LETTER_PAGE else ""
        out.message(f"{page.more} more: icefloe dlq list{where}{sized} --after {page.next_after}")


@dlq.command()
@project_options
@format_option
@click.argument("event_id")
def show(project_dir: str, env: str | None, fmt: str, event_id: str) -> None:
    """One event, whole: a field per line, the error in full."""
    with open_project(project_dir, env) as project:
        event = project.event(event_id)
    row = event.to_dict()
    if fmt != "table":
        output(fmt).rows([row])
        return
    shown = {k: _when(v) if k.endswith("_at") else v for k, v in row.items()}
    output(fmt).record(shown, title=f"event {event.id} ({event.state})", long=("error",))


def _when(ts: Any) -> Any:
    """Epoch seconds as UTC time for people; scripts keep the numbers (--format json)."""
    if not isinstance(ts, (int, float)) or not ts:
        return ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _ids(event_ids: tuple[str, ...], all_: bool) -> list[str] | None:
    if all_ == bool(event_ids):
        raise click.UsageError("give EVENT_ID... or --all (not both)")
    return None if all_ else list(event_ids)


@dlq.command()
@project_options
@click.option("--all", "all_", is_flag=True, help="Every dead event.")
@click.option("--now", is_flag=True, help="Process the replayed events before returning.")
@click.argument("event_ids", nargs=-1)
def replay(project_dir: str, env: str | None, all_: bool, now: bool, event_ids: tuple[str, ...]) -> None:
    """Queue dead events again (after fixing the data or the config)."""
    with open_project(project_dir, env) as project:
        done = project.replay(_ids(event_ids, all_))
        click.echo(f"replaying {len(done)} event(s)", err=True)
        if now and done:
            # counted from the run, not from the replayed ids: a replayed event whose file was
            # rewritten meanwhile is discarded as superseded, and the new version is the replay
            summary = project.run(once=True)
            states = [project.event(i).state for i in done]
            committed, dead = max(summary.committed, states.count("committed")), max(summary.dead, states.count("dead"))
            click.echo(f"committed {committed}, dead {dead}, discarded {summary.discarded}", err=True)
            if dead:  # replayed and dead again: not a success
                raise click.exceptions.Exit(EXIT_DEAD)


@dlq.command()
@project_options
@click.option("--all", "all_", is_flag=True, help="Every dead event.")
@click.argument("event_ids", nargs=-1)
def discard(project_dir: str, env: str | None, all_: bool, event_ids: tuple[str, ...]) -> None:
    """Give up on dead events for good (they stay in the ledger as discarded)."""
    with open_project(project_dir, env) as project:
        done = project.discard(_ids(event_ids, all_))
    click.echo(f"discarded {len(done)} event(s)", err=True)


COMMANDS = [dlq]

"""`icefloe run` and `icefloe ingest`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections import Counter
from typing import Any

import click

from icefloe.cli import EXIT_DEAD, EXIT_INTERRUPTED
from icefloe.cli.common import format_option, open_project, output, project_options
from icefloe.ledger import Event

__all__ = ["COMMANDS"]


def _event_row(e: Event) -> dict[str, Any]:
    return {
        "event": e.id, "object": e.object_ref, "pipeline": e.pipeline, "state": e.state,
        "rows": e.rows_out, "quarantined": e.rows_quarantined, "snapshot": e.snapshot_id, "error": e.error,
    }  # fmt: skip


@click.command()
@project_options
@click.option("--once", is_flag=True, help="Process everything pending, then exit (scale to zero).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve Prometheus /metrics on this port (off by default).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address /metrics listens on (0.0.0.0: every interface).")
def run(project_dir: str, env: str | None, once: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Watch the sources and process events until Ctrl-C (or until idle with --once)."""
    stop = threading.Event()
    if not logging.getLogger("icefloe").isEnabledFor(logging.INFO):
        logging.getLogger("icefloe").setLevel(logging.INFO)  # a long-running worker says what it commits
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with open_project(project_dir, env) as project:
        server = None
        if metrics_port is not None:
            from icefloe.observe.metrics import serve_metrics

            try:
                server, _ = serve_metrics(project.runtime, metrics_port, metrics_host)
            except OSError as exc:  # the port is taken: say so before any work starts
                raise click.UsageError(f"--metrics-port {metrics_port}: cannot listen on {metrics_host}: {exc.strerror or exc}") from exc
            click.echo(f"icefloe: metrics on http://{metrics_host}:{server.server_port}/metrics", err=True)
        try:
            if not once:
                click.echo(f"icefloe: watching {', '.join(project.sources) or 'no sources'} (Ctrl-C to stop)", err=True)
            summary = project.run(once=once, stop=stop)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
    # only what this process did: other workers' commits meanwhile are theirs
    click.echo(summary.line(), err=True)
    if once:
        if stop.is_set() and not summary.done:
            raise click.exceptions.Exit(EXIT_INTERRUPTED)  # stopped with work left: not done
        if summary.dead:
            raise click.exceptions.Exit(EXIT_DEAD)


@click.command()
@project_options
@format_option
@click.option("--source", default=None, help="Land on this source (default: the first one).")
@click.option("--key-prefix", default="", help="Prefix for the object keys, e.g. orders/2026/.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def ingest(project_dir: str, env: str | None, fmt: str, source: str | None, key_prefix: str, files: tuple[str, ...]) -> None:
    """Treat FILES as landed on a source; process and commit them now."""
    out = output(fmt)
    with open_project(project_dir, env) as project:
        if sys.stderr.isatty() and fmt == "table":
            events = _with_progress(project, files, source, key_prefix)
        else:
            events = project.ingest(files, source=source, key_prefix=key_prefix)
        out.rows([_event_row(e) for e in events], title="ingested")
        if any(e.state == "dead" for e in events):
            raise click.exceptions.Exit(EXIT_DEAD)


def _with_progress(project: Any, files: tuple[str, ...], source: str | None, key_prefix: str) -> list[Event]:
    from rich.console import Group
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    counts: Counter[str] = Counter()
    reading: dict[str, Any] = {}
    files_bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # one line per big file being read: bytes, speed, records, time left
    bytes_bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("{task.fields[records]:,} records"), TimeRemainingColumn(),
    )  # fmt: skip
    with Live(Group(files_bar, bytes_bar), transient=True, refresh_per_second=8):
        task = files_bar.add_task("ingesting", total=None)

        def seen(event: Event, state: str) -> None:
            counts[state] += 1
            files_bar.update(task, advance=1, description=f"committed {counts['committed']} dead {counts['dead']}")
            if event.id in reading:
                bytes_bar.remove_task(reading.pop(event.id))

        def copying(path: Any, done: int) -> None:
            size = path.stat().st_size
            if size < _BIG_FILE:
                return
            if path not in reading:
                reading[path] = bytes_bar.add_task(f"landing {path.name}", total=size, records=0)
            bytes_bar.update(reading[path], completed=done)
            if done >= size:
                bytes_bar.remove_task(reading.pop(path))

        def progress(event: Event, done: int, records: int) -> None:
            if event.size < _BIG_FILE:
                return
            if event.id not in reading:
                reading[event.id] = bytes_bar.add_task(event.key, total=event.size, records=0)
            bytes_bar.update(reading[event.id], completed=done, records=records)

        return project.ingest(  # type: ignore[no-any-return]
            files, source=source, key_prefix=key_prefix, on_event=seen, on_progress=progress, on_copy=copying,
            on_landed=lambda n: files_bar.update(task, total=n),
        )  # fmt: skip


_BIG_FILE = 16 << 20  # smaller files finish before a byte bar would tell anything


COMMANDS = [run, ingest]

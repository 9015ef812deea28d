"""`icefloe serve`: the HTTP API, the dashboard and /metrics on one port (uvicorn)."""

from __future__ import annotations

import logging
import signal
import threading

import click

from icefloe.cli.common import open_project, project_options
from icefloe.errors import ConfigError, IcefloeError
from icefloe.project import Project

__all__ = ["COMMANDS"]

log = logging.getLogger("icefloe.serve")


@click.command("serve")
@project_options
@click.option("--host", default=None, help="Address to listen on (default: serve.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: serve.port, 8080; 0 picks a free one).")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a worker, in a child process (commits what the API lands; ?wait=commit needs one somewhere).")  # fmt: skip
def serve(project_dir: str, env: str | None, host: str | None, port: int | None, worker: bool) -> None:
    """Serve the project over HTTP. Every request but /healthz needs a token (`icefloe token new`)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ConfigError("icefloe serve needs the web extra: pip install 'icefloe[web]'") from exc
    from icefloe.web import worker_process
    from icefloe.web.app import create_app
    from icefloe.web.warm import warm_up

    project = open_project(project_dir, env)
    if not project.config.serve.tokens:
        raise ConfigError(
            f"{project.config.where('serve')}: no serve.tokens configured, so nobody could use the API "
            "or the dashboard; create one with `icefloe token new NAME --scope read`"
        )
    settings = project.config.serve
    with project:
        app = create_app(project)
        # imports, connections, the catalog, templates: paid here, before the port is bound, not
        # by whoever asks first (nothing is kept as an answer: every request reads the ledger)
        warm_up(project)
        stop = threading.Event()
        if worker and not logging.getLogger("icefloe").isEnabledFor(logging.INFO):
            logging.getLogger("icefloe").setLevel(logging.INFO)  # a long-running worker says what it commits
        child = thread = None
        if worker and worker_process.usable(project.runtime):
            child = app.state.worker = worker_process.WorkerProcess(project.runtime)
            child.start()
        elif worker:
            thread = _start_worker(project, stop)
        # uvicorn shuts down on SIGTERM, then raises the signal again once it has put the handler
        # it found back: with the default one that ended the process there, before the worker
        # below was stopped; this one makes it a clean exit through the `finally`
        previous = signal.signal(signal.SIGTERM, _exit) if threading.current_thread() is threading.main_thread() else None
        try:
            uvicorn.run(app, host=host or settings.host, port=settings.port if port is None else port,
                        log_level="warning", access_log=False)  # fmt: skip
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)  # a second SIGTERM ends it at once
            ingestor = getattr(app.state, "ingestor", None)
            if ingestor is not None and ingestor.group.batches:
                group = ingestor.group
                log.info("ingest API: %d landings in %d ledger commits (%.1f a commit, at most %d)",
                         group.landings, group.batches, group.landings / group.batches, group.largest)  # fmt: skip
            # uvicorn returns on SIGINT/SIGTERM; the worker flushes what it buffered and signs off
            stop.set()
            if thread is not None:
                thread.join()
            code = child.stop() if child is not None else 0
            if code:  # in place of uvicorn's clean SystemExit too: the exit code says it
                raise IcefloeError(f"the worker process exited with code {code} while stopping (see its log above)")


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _start_worker(project: Project, stop: threading.Event) -> threading.Thread:
    """`icefloe run` beside the API, in a thread of this process: for backends a second process
    could not open (handed in, or in memory); otherwise the worker is a child (web/worker_process.py)."""
    thread = threading.Thread(target=project.run, kwargs={"stop": stop}, name="icefloe-worker", daemon=True)
    thread.start()
    return thread


COMMANDS = [serve]

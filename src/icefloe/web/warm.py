"""What `icefloe serve` does before it listens, so that nobody's first request pays for it.

A fresh process's first overview imported pyiceberg, SQLAlchemy and the PostgreSQL driver,
opened the ledger and the catalog, parsed each table's metadata and compiled the templates:
1.4 s (SQLite) and 5.6 s (PostgreSQL) on a busy machine, the same on an empty ledger. Here all
of that happens once at start-up, before uvicorn binds its port (a load balancer's /healthz
probe, like a user, finds the server only once it is ready).

Nothing computed here is kept as an answer: every page still reads the ledger when it is asked.
What stays is what any later request would have made anyway and that cannot go stale: imported
modules, open connections, compiled templates, and the catalog's parsed metadata files (kept by
location, and a metadata file never changes once written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from icefloe.project import Project

__all__ = ["warm_up"]

log = logging.getLogger("icefloe.serve")


def warm_up(project: Project) -> float:
    """Open and import what the pages and /metrics need; returns the seconds it took.

    A backend that is down now is not waited for: its pages say so when asked, as they would
    have without the warm-up, and the server starts anyway."""
    began = time.perf_counter()
    _quietly("the dashboard's templates", _templates)
    _quietly("the overview", lambda: _overview(project))
    _quietly("/metrics", lambda: _metrics(project))
    took = time.perf_counter() - began
    log.debug("warmed up in %.3f s", took)
    return took


def _quietly(what: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a warm-up that fails leaves the first request to try
        log.warning("warming up %s failed (the first request will try again): %s", what, exc)


def _templates() -> None:
    from icefloe.web.dashboard.common import compile_templates

    compile_templates()


def _overview(project: Project) -> None:
    # the catalog first: a server keeps it open (pooled connections, parsed metadata), and status
    # then loads the tables through it rather than reading their files afresh (`lake.peek`, for
    # one-shot commands); then the same calls the overview makes, their answers dropped
    from icefloe.web.dashboard.overview import BUCKET, WINDOW
    from icefloe.web.dashboard.summary import summarise

    _quietly("the catalog", lambda: project.runtime.catalog)
    summarise(project.runtime, window=WINDOW, bucket=BUCKET)


def _metrics(project: Project) -> None:
    from icefloe.observe.metrics import exposition

    exposition(project.runtime)

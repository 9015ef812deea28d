"""`create_app(project)`: the Starlette app `icefloe serve` runs.

Each part (the HTTP API under /v1, the dashboard under /ui, /metrics) contributes its routes here;
they share the project, the token book and the error shape set up once below.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from icefloe.project import Project
from icefloe.web.auth import TokenBook
from icefloe.web.dashboard import routes as dashboard_routes

__all__ = ["create_app"]


async def _healthz(request: Request) -> Response:
    # unauthenticated on purpose (load balancers probe it): it says nothing about the data
    return JSONResponse({"ok": True})


async def _metrics(request: Request) -> Response:
    """A Prometheus scrape (the `read` scope): this process's counters and the ledger's gauges."""
    from starlette.concurrency import run_in_threadpool

    from icefloe.observe.metrics import exposition
    from icefloe.web.auth import require

    require(request, "read")
    # the worker's counters are in its process (`icefloe serve`'s child): its scrape, which has
    # the ledger's gauges too; this process's own while no child answers
    worker = getattr(request.app.state, "worker", None)
    scraped: tuple[bytes, str] | None = None
    if worker is not None:
        scraped = await run_in_threadpool(worker.scrape)
    if scraped is None:
        scraped = await run_in_threadpool(exposition, request.app.state.project.runtime)
    body, content_type = scraped
    if worker is not None:
        body += worker.metrics()
    return Response(body, media_type=content_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(project: Project, *, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The app for `project`; `routes` are added after the built-in ones (tests add their own)."""
    from icefloe.web.api import ROUTES as API

    all_routes: list[BaseRoute] = [Route("/healthz", _healthz), Route("/metrics", _metrics)]
    all_routes.extend(API)
    all_routes.extend(dashboard_routes())
    all_routes.extend(routes)
    app = Starlette(routes=all_routes, exception_handlers={HTTPException: _http_error})
    app.state.project = project
    app.state.tokens = TokenBook(project.config.serve.tokens)
    return app

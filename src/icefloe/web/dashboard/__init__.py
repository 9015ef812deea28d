"""The dashboard under /ui: server-rendered pages over the same library calls as the CLI.

One module per page; `routes()` is what `create_app` mounts. Charts are inline SVG drawn on the
server (`charts`), so the browser runs no script and nothing is built on the user's machine.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from icefloe.web.dashboard import console, dlq, events, lineage, login, overview, tables, trace
from icefloe.web.dashboard.common import stylesheet

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    return [Mount("/ui", routes=[
        Route("/", overview.endpoint, name="overview"),
        Route("/login", login.form, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/style.css", stylesheet),
        Route("/events", events.endpoint),
        Route("/events/{id}", trace.endpoint),
        Route("/dlq", dlq.endpoint, methods=["GET"]),
        Route("/dlq", dlq.act, methods=["POST"]),
        Route("/tables", tables.index),
        Route("/tables/{name}", tables.one),
        Route("/lineage", lineage.endpoint),
        Route("/sql", console.endpoint, methods=["GET", "POST"]),
    ])]  # fmt: skip

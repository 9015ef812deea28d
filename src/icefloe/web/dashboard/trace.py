"""One event: its timeline (landed, leased, read, checked, staged, committed: every step the ledger timed), rows in,
out and quarantined, the snapshot it is in, and its error as the worker recorded it (the file
and the line or record it names)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from icefloe.web.dashboard.charts import timeline
from icefloe.web.dashboard.common import html, page, project

__all__ = ["endpoint"]


@html
def endpoint(request: Request) -> Response:
    p = project(request)
    traced = p.trace(request.path_params["id"])  # an id, a prefix, or an object's name, as `icefloe trace`
    event = p.event(traced["event"]["id"])
    # the ledger records every step, landed and leased and committed too, timed from the landing
    steps = [(s["step"], float(s["at_ms"]), float(s["took_ms"]), s["detail"]) for s in traced["steps"]]
    chart = timeline([(name, at, took) for name, at, took, _ in steps])
    return page(request, "trace.html", event=event, steps=steps, chart=chart, others=traced["events"],
                total_ms=traced["total_ms"])  # fmt: skip

"""One event: its timeline (landed, leased, every step the ledger timed, committed), rows in,
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
    origin = event.landed_at
    steps: list[tuple[str, float, float]] = [("landed", 0.0, 0.0)]
    if event.started_at:
        steps.append(("leased", (event.started_at - origin) * 1000, 0.0))
    steps += [(s.step, (s.started_at - origin) * 1000, s.millis) for s in p.ledger.steps(event.id)]
    if event.committed_at:
        steps.append(("committed", (event.committed_at - origin) * 1000, 0.0))
    steps.sort(key=lambda s: s[1])
    return page(request, "trace.html", event=event, steps=steps, chart=timeline(steps), others=traced["events"],
                total_ms=traced["total_ms"])  # fmt: skip

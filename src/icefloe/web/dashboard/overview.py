"""The overview: per source, pipeline, table and worker, what `icefloe status` says, and the last
hour per pipeline (landed, committed, rows, failed) as small charts from the ledger, counted on
every request (`summary`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from icefloe.web.dashboard.charts import bars
from icefloe.web.dashboard.common import html, page, project
from icefloe.web.dashboard.summary import summarise

__all__ = ["endpoint"]

BUCKET = 60.0
WINDOW = 3600.0


@html
def endpoint(request: Request) -> Response:
    summary = summarise(project(request).runtime, window=WINDOW, bucket=BUCKET)
    rows, start, series = summary.rows, summary.start, summary.series
    charts = {
        s.pipeline: {
            "committed": bars(s.committed, start=start, bucket=BUCKET, label=f"{s.pipeline}: events committed per minute"),
            "rows": bars(s.rows, start=start, bucket=BUCKET, label=f"{s.pipeline}: rows committed per minute",
                         colour="#3a8d4f"),
            "failed": bars(s.failed, start=start, bucket=BUCKET, label=f"{s.pipeline}: failures per minute",
                           colour="#b53a2f"),
            "landed_hour": sum(s.landed), "committed_hour": sum(s.committed), "rows_hour": sum(s.rows),
            "failed_hour": sum(s.failed),
        }
        for s in series
    }  # fmt: skip
    by_kind: dict[str, list[dict[str, object]]] = {"source": [], "pipeline": [], "worker": [], "table": []}
    for row in rows:
        by_kind.setdefault(str(row["kind"]), []).append(row)
    return page(request, "overview.html", rows=by_kind, charts=charts, summary=summary)

"""Lineage: object -> event -> snapshot -> table, for a table (its newest snapshots and the
objects behind them) or for one object (`?object=source:key`, a key or a file name)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from icefloe.observe.lineage import object_lineage, table_lineage
from icefloe.web.dashboard.common import html, page, project

__all__ = ["endpoint"]


@html
def endpoint(request: Request) -> Response:
    rt = project(request).runtime
    table = request.query_params.get("table", "").strip()
    obj = request.query_params.get("object", "").strip()
    by_table = table_lineage(rt, table) if table else None
    by_object = object_lineage(rt, obj) if obj else None
    return page(request, "lineage.html", table=table, object=obj, by_table=by_table, by_object=by_object)

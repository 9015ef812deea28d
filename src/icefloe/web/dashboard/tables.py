"""Tables: each table's schema, its snapshots with the events each committed, its health (files,
small-file ratio, metadata size, last maintenance) and a time-travel preview at any snapshot."""

from __future__ import annotations

import re

from pyiceberg.exceptions import NoSuchTableError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from icefloe.errors import IcefloeError
from icefloe.web.dashboard.common import html, page, project

__all__ = ["PREVIEW_ROWS", "index", "one"]

PREVIEW_ROWS = 20
# the name goes into the preview's SQL text: only the identifiers icefloe's config allows
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@html
def index(request: Request) -> Response:
    return page(request, "tables.html", tables=project(request).tables())


@html
def one(request: Request) -> Response:
    p = project(request)
    name = request.path_params["name"]
    if not _NAME.match(name):
        raise HTTPException(404, f"no table {name!r}")
    try:
        table = p.catalog.load_table(name)
    except NoSuchTableError:
        raise HTTPException(404, f"no table {name!r}") from None
    snapshots = list(reversed(p.history(name)))
    as_of = request.query_params.get("as_of") or None
    preview, problem = None, None
    try:
        preview = p.sql(f"select * from {name} limit {PREVIEW_ROWS}", as_of=as_of)
    except IcefloeError as exc:  # e.g. an expired snapshot: say so on the page, show the rest
        problem = str(exc)
    fields = [{"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required}
              for f in table.schema().fields]  # fmt: skip
    return page(request, "table.html", name=name, fields=fields, snapshots=snapshots, health=p.table_health(name),
                as_of=as_of, preview=preview.to_pylist() if preview is not None else None,
                columns=preview.column_names if preview is not None else [], problem=problem,
                partition=str(table.spec()), location=table.location())  # fmt: skip

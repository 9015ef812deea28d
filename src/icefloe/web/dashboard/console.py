"""The SQL console: one read-only SELECT over icefloe's views (`icefloe.query.readonly`), a row
limit and a timeout. GET shows the form; POST (with the CSRF token) runs the query."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from icefloe.errors import IcefloeError
from icefloe.query.readonly import ROW_LIMIT, TIMEOUT, read_only_query
from icefloe.web.dashboard.common import check_csrf, html, project, render, who

__all__ = ["endpoint"]

EXAMPLE = "select state, count(*) as events from icefloe.events group by state order by state"


@html
async def endpoint(request: Request) -> Response:
    principal = who(request, "read")
    tables: list[str] = []
    sql, result, error = EXAMPLE, None, None
    if request.method == "POST":
        sql = (await check_csrf(request)).get("sql", "").strip()
        try:
            result = await run_in_threadpool(read_only_query, project(request).runtime, sql)
        except IcefloeError as exc:
            error = str(exc)
    try:
        tables = [t["table"] for t in await run_in_threadpool(project(request).tables)]
    except IcefloeError:  # the catalog is down: the ledger's views still answer
        pass
    return render(request, "sql.html", status=400 if error else 200, principal=principal, sql=sql, error=error,
                  rows=result.table.to_pylist() if result else None, columns=result.table.column_names if result else [],
                  truncated=result.truncated if result else False, limit=ROW_LIMIT, timeout=TIMEOUT,
                  tables=tables)  # fmt: skip

"""The dead-letter queue: each dead event and why, a page at a time; replay and discard are the
same ledger calls as `icefloe dlq replay/discard`, POSTed with a CSRF token by an operate token."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from icefloe.web.dashboard.common import check_csrf, html, page, project, who

__all__ = ["PAGE", "act", "endpoint"]

PAGE = 50


@html
def endpoint(request: Request) -> Response:
    after = request.query_params.get("after")
    if after is not None and not after.isdigit():
        raise HTTPException(400, f"after={after!r} is not a number")
    found = project(request).dead_letter_page(limit=PAGE, after=int(after) if after else None)
    nxt = f"?{urlencode({'after': found.next_after})}" if found.next_after is not None else None
    return page(request, "dlq.html", page_=found, next=nxt, done=request.query_params.get("done", ""),
                first="?" if after else None)  # fmt: skip


@html
async def act(request: Request) -> Response:
    who(request, "operate")
    fields = await check_csrf(request)
    form = await request.form()
    ids = [v for v in form.getlist("id") if isinstance(v, str) and v]
    action = fields.get("action")
    if action not in ("replay", "discard"):
        raise HTTPException(400, f"action={action!r}: replay or discard")
    if not ids:
        raise HTTPException(400, "no event chosen: tick at least one")
    p = project(request)
    moved = await run_in_threadpool(p.replay if action == "replay" else p.discard, ids)
    verb = "replayed" if action == "replay" else "discarded"
    # POST, then redirect, then GET: reloading the page does not send the action again
    return RedirectResponse(f"/ui/dlq?{urlencode({'done': f'{verb} {len(moved)} of {len(ids)}'})}", status_code=303)

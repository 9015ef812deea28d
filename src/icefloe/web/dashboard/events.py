"""Events: filtered by state, source, pipeline and landing time, newest first, a page at a time.

Keyset paging (`before` = the last `seq` shown), so the millionth event costs what the first
does, and the ledger counts the matches rather than the page loading them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from icefloe.ledger.base import STATES
from icefloe.web.dashboard.common import html, page, project

__all__ = ["PAGE", "endpoint"]

PAGE = 50


def _time(value: str, name: str) -> float | None:
    """An ISO time from the form (a datetime-local input sends no zone: it is UTC here)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name}={value!r} is not a time like 2026-01-05T10:00") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _int(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, f"{name}={value!r} is not a number") from None


@html
def endpoint(request: Request) -> Response:
    q = request.query_params
    rt = project(request).runtime
    state = q.get("state", "")
    if state and state not in STATES:
        raise HTTPException(400, f"state={state!r}: use one of {', '.join(STATES)}")
    filters: dict[str, Any] = {
        "states": [state] if state else None,
        "source": q.get("source") or None,
        "pipeline": q.get("pipeline") or None,
        "since": _time(q.get("since", ""), "since"),
        "until": _time(q.get("until", ""), "until"),
    }
    before = _int(q.get("before"), "before")
    found = rt.ledger.search(**filters, before=before, limit=PAGE)
    total = rt.ledger.search_count(**filters)
    kept = {k: q.get(k, "") for k in ("state", "source", "pipeline", "since", "until") if q.get(k)}
    older = f"?{urlencode({**kept, 'before': found[-1].seq})}" if len(found) == PAGE else None
    first = f"?{urlencode(kept)}" if before is not None else None
    return page(request, "events.html", events=found, total=total, kept=kept, older=older, first=first,
                states=STATES, sources=list(rt.config.sources), pipelines=list(rt.config.pipelines))  # fmt: skip

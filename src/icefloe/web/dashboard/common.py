"""What every dashboard page shares: the templates, who is asking, CSRF, and the HTML errors.

Pages render on the server (Jinja2, autoescaped) and need no JavaScript: filters and paging are
links and GET forms, actions are POST forms. The session is the same bearer token the API takes,
in an HttpOnly SameSite=Strict cookie; every POST also carries a CSRF token bound to that session.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from icefloe.errors import IcefloeError, NotFoundError
from icefloe.project import Project
from icefloe.web.auth import COOKIE, Principal, authenticate, require

__all__ = ["LoginNeeded", "check_csrf", "compile_templates", "csrf_token", "html", "page", "project", "render", "stylesheet", "who"]

_TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)  # fmt: skip
# the browser may load only this app's stylesheet and submit forms only to it; no script at all
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(time.time() - ts, 0.0)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


_env.filters.update(iso=_iso, ago=_ago, q=lambda s: quote(str(s), safe=""))


def compile_templates() -> None:
    """Compile every page's template now (`icefloe serve` does it before it listens); Jinja keeps
    them, and still reloads one whose file changed."""
    for name in _env.list_templates(extensions=["html"]):
        _env.get_template(name)


class LoginNeeded(Exception):
    """No or unknown token on a page: the browser is sent to the login form (an API client gets
    JSON 401 from the API's routes; the dashboard is for people)."""

    def __init__(self, back: str) -> None:
        self.back = back


def who(request: Request, scope: str = "read") -> Principal:
    """The principal if it may `scope`; LoginNeeded without a valid token, 403 without the scope."""
    try:
        return require(request, scope)
    except HTTPException as exc:
        if exc.status_code == 401:
            raise LoginNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else "")) from None
        raise


def project(request: Request) -> Project:
    found: Project = request.app.state.project
    return found


_secret_lock = threading.Lock()


def _csrf_secret(request: Request) -> bytes:
    # one per app, made on first use: a restart invalidates open forms, never a session
    state = request.app.state
    with _secret_lock:
        if getattr(state, "csrf_secret", None) is None:
            state.csrf_secret = secrets.token_bytes(32)
        secret: bytes = state.csrf_secret
    return secret


def csrf_token(request: Request) -> str:
    """Bound to the token the request presents: a form from one session is no good in another,
    and a page of another site cannot read it (SameSite=Strict keeps the cookie off its POSTs too)."""
    secret = _csrf_secret(request)
    presented = request.cookies.get(COOKIE, "") or request.headers.get("authorization", "")
    return hmac.new(secret, presented.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> dict[str, str]:
    """The POSTed form, after its CSRF token was checked (403 if wrong or missing) and, when the
    browser says where the form came from, that it came from here: the login form has no
    session to bind its token to, so the Origin check is what stops another site posting it."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"a form posted from {origin!r}, not from this dashboard")
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    sent = fields.get("csrf", "")
    if not hmac.compare_digest(sent, csrf_token(request)):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    return fields


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal: Principal | None = context.pop("principal", None)
    body = _env.get_template(template).render(
        request=request, principal=principal, csrf=csrf_token(request),
        can_operate=bool(principal and principal.allows("operate")), **context,
    )  # fmt: skip
    return HTMLResponse(body, status_code=status, headers=security_headers())


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"}  # fmt: skip


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A read page: needs the read scope."""
    return render(request, template, principal=who(request), **context)


def to_login(back: str) -> Response:
    return RedirectResponse(f"/ui/login?next={quote(back, safe='')}", status_code=303)


Endpoint = Callable[[Request], Response | Awaitable[Response]]


def html(fn: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """A page endpoint: a plain function runs in the thread pool (the ledger and the catalog
    block); no session sends the browser to the login form; errors render as a page."""

    @functools.wraps(fn)
    async def endpoint(request: Request) -> Response:
        try:
            if inspect.iscoroutinefunction(fn):
                response: Response = await fn(request)
            else:
                response = await run_in_threadpool(cast(Callable[[Request], Response], fn), request)
            return response
        except LoginNeeded as exc:
            return to_login(exc.back)
        except HTTPException as exc:
            return _error(request, exc.status_code, str(exc.detail))
        except NotFoundError as exc:
            return _error(request, 404, str(exc))
        except IcefloeError as exc:
            return _error(request, 400, str(exc))

    return endpoint


def _error(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status=status, principal=authenticate(request), status_code=status,
                  message=message)  # fmt: skip


async def stylesheet(request: Request) -> Response:
    # public, like /healthz: it says nothing about the data, and the login page needs it
    css = (_TEMPLATES / "style.css").read_text()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

"""Sign in with a token: the form checks it against `serve.tokens` and keeps it in an HttpOnly,
SameSite=Strict cookie (script cannot read it, another site's forms do not carry it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from icefloe.web.auth import COOKIE, authenticate
from icefloe.web.dashboard.common import check_csrf, html, render

__all__ = ["form", "logout", "submit"]

# a session lasts a working day; the token itself lasts until it is removed from icefloe.yaml
MAX_AGE = 12 * 3600


def _next(value: str | None) -> str:
    # only back into the dashboard: a login link must not redirect anywhere else
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui/"


@html
def form(request: Request) -> Response:
    back = _next(request.query_params.get("next"))
    if authenticate(request) is not None:
        return RedirectResponse(back, status_code=303)
    return render(request, "login.html", back=back, failed=False)


@html
async def submit(request: Request) -> Response:
    fields = await check_csrf(request)
    back = _next(fields.get("next"))
    token = fields.get("token", "").strip()
    if not token or request.app.state.tokens.check(token) is None:
        return render(request, "login.html", status=401, back=back, failed=True)
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(COOKIE, token, max_age=MAX_AGE, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip
    return response


@html
async def logout(request: Request) -> Response:
    await check_csrf(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response

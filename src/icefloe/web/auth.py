"""Bearer tokens: only their SHA-256 is in icefloe.yaml; a request proves it holds one.

A token is a random 256-bit secret (`icefloe token new`), so one unsalted SHA-256 is enough to keep
the config from holding it: there is nothing to brute-force the way there is with a password.
The dashboard's login form puts the same token in an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from icefloe.config.serve import TokenConfig

__all__ = ["COOKIE", "Principal", "TokenBook", "authenticate", "hash_token", "new_token", "require"]

COOKIE = "icefloe_session"
TOKEN_PREFIX = "ifl_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and what it may do."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str, resource: str | None = None) -> bool:
        """`ingest` on any resource or `ingest:NAME` on that one; `operate` implies `read`."""
        if scope in self.scopes:
            return True
        if scope == "read" and "operate" in self.scopes:
            return True
        return resource is not None and f"{scope}:{resource}" in self.scopes


class TokenBook:
    """The configured tokens, looked up by hash (compared in constant time)."""

    def __init__(self, tokens: Iterable[TokenConfig]) -> None:
        self._tokens = [(t.hash, Principal(t.name, frozenset(t.scopes))) for t in tokens]

    def __len__(self) -> int:
        return len(self._tokens)

    def check(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found: Principal | None = None
        for stored, principal in self._tokens:
            # every entry compared, so the time taken does not say which one matched
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


def _presented(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.cookies.get(COOKIE) or None


def authenticate(conn: HTTPConnection) -> Principal | None:
    """The request's principal, from `Authorization: Bearer` or the session cookie; None if neither."""
    token = _presented(conn)
    book: TokenBook = conn.app.state.tokens
    return book.check(token) if token else None


def require(conn: HTTPConnection, scope: str, resource: str | None = None) -> Principal:
    """The principal if it may do `scope` (on `resource`); else 401 (no/unknown token) or 403."""
    principal = authenticate(conn)
    if principal is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="icefloe"'})
    if not principal.allows(scope, resource):
        what = f"{scope}:{resource}" if resource else scope
        raise HTTPException(403, f"token {principal.name!r} lacks scope {what!r}")
    return principal

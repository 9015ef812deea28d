"""Idempotency-Key claims and stored answers, in the ledger so every API host shares them.

The semantics are the IETF draft's (draft-ietf-httpapi-idempotency-key-header): a key is scoped
to the token that sent it; the first request claims it; a retry while it is in flight gets 409;
a retry after it finished gets the stored answer if its fingerprint (method, path, body hash)
is the same, else 422. A failed first request gives the key back, so the client may retry. A
claim whose host died is taken over once it is `in_flight` seconds old; answers expire after
`ttl` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from icefloe.errors import ConfigError
from icefloe.ledger.base import Ledger

__all__ = ["Claim", "IdempotencyStore"]

_PURGE_EVERY = 60.0


@dataclass(frozen=True)
class Claim:
    """`new`: this request owns the key; `in_flight`: another one does; `done`: it finished."""

    state: Literal["new", "in_flight", "done"]
    fingerprint: str | None = None
    status: int | None = None
    response: str | None = None


class IdempotencyStore:
    def __init__(self, ledger: Ledger, *, ttl: float, in_flight: float) -> None:
        from icefloe.ledger.sql_side import SqlBase

        if not isinstance(ledger, SqlBase):
            raise ConfigError(f"Idempotency-Key needs a SQL ledger (sqlite or postgresql), not {type(ledger).__name__}")
        self.ledger, self.ttl, self.in_flight = ledger, ttl, in_flight
        self._purged = 0.0

    def claim(self, principal: str, key: str) -> Claim:
        self._purge()
        lock = self.ledger.dialect.row_lock
        with self.ledger._tx() as db:
            now = self.ledger._now(db)
            row = db.execute(
                f"SELECT state, fingerprint, status, response, claimed_at, expires_at FROM idempotency"
                f" WHERE principal=? AND key=?{lock}",
                (principal, key),
            ).fetchone()
            if row is None:
                taken = db.execute(
                    "INSERT INTO idempotency (principal, key, state, claimed_at, expires_at)"
                    " VALUES (?, ?, 'in_flight', ?, ?) ON CONFLICT DO NOTHING",
                    (principal, key, now, now + self.ttl),
                ).rowcount
                # another host inserted it between our read and our write: it is in flight
                return Claim("new") if taken else Claim("in_flight")
            state, fingerprint, status, response, claimed_at, expires_at = row
            abandoned = state == "in_flight" and now - float(claimed_at) > self.in_flight
            if float(expires_at) < now or abandoned:
                db.execute(
                    "UPDATE idempotency SET state='in_flight', fingerprint=NULL, status=NULL, response=NULL,"
                    " claimed_at=?, expires_at=? WHERE principal=? AND key=?",
                    (now, now + self.ttl, principal, key),
                )
                return Claim("new")
            if state == "in_flight":
                return Claim("in_flight")
            return Claim("done", fingerprint, int(status), response)

    def finish(self, principal: str, key: str, fingerprint: str, status: int, response: str) -> None:
        """Store the answer a retry with the same key and fingerprint gets."""
        with self.ledger._tx() as db:
            now = self.ledger._now(db)
            db.execute(
                "UPDATE idempotency SET state='done', fingerprint=?, status=?, response=?, expires_at=?"
                " WHERE principal=? AND key=?",
                (fingerprint, status, response, now + self.ttl, principal, key),
            )

    def release(self, principal: str, key: str) -> None:
        """The first request failed: nothing was accepted, so the key is free again."""
        with self.ledger._tx() as db:
            db.execute("DELETE FROM idempotency WHERE principal=? AND key=? AND state='in_flight'", (principal, key))

    def _purge(self) -> None:
        if time.monotonic() - self._purged < _PURGE_EVERY:
            return
        self._purged = time.monotonic()
        with self.ledger._tx() as db:
            db.execute("DELETE FROM idempotency WHERE expires_at < ?", (self.ledger._now(db),))

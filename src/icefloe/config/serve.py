"""The `serve:` section: where `icefloe serve` listens and the bearer tokens it accepts."""

from __future__ import annotations

import re
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["SCOPE_PATTERN", "ServeConfig", "TokenConfig"]

# read: every GET (API, dashboard, metrics, SQL console); operate: dlq replay/discard (implies
# read); ingest: upload to any source / post to any pipeline; ingest:NAME: only that one
SCOPE_PATTERN = re.compile(r"^(read|operate|ingest)(:[A-Za-z0-9_.-]+)?$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


class TokenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    # only the hash is stored: `icefloe token new` prints the token once and this line
    hash: str
    scopes: list[str] = Field(default_factory=lambda: ["read"])

    @field_validator("hash")
    @classmethod
    def _is_hash(cls, value: str) -> str:
        if not _HASH.match(value):
            raise ValueError("not a token hash: expected sha256:<64 hex digits> (from `icefloe token new`)")
        return value

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not SCOPE_PATTERN.match(s)]
        if bad:
            raise ValueError(f"unknown scope(s) {bad}: use read, operate, ingest or ingest:NAME")
        return value


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[TokenConfig] = Field(default_factory=list)

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, value: list[TokenConfig]) -> list[TokenConfig]:
        seen: set[str] = set()
        for token in value:
            if token.name in seen:
                raise ValueError(f"token name {token.name!r} appears twice")
            seen.add(token.name)
        return value


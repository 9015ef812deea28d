"""The `serve:` section: where `icefloe serve` listens and the bearer tokens it accepts."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["SCOPE_PATTERN", "IngestApiConfig", "ServeConfig", "TokenConfig"]

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


def _size(value: Any) -> int:
    from icefloe.config.models import parse_size  # models imports this module

    return parse_size(value)


def _duration(value: Any) -> float:
    from icefloe.config.models import parse_duration

    return parse_duration(value)


class IngestApiConfig(BaseModel):
    """`serve.ingest`: the limits of the HTTP ingest API (PUT /v1/objects, POST /v1/records)."""

    model_config = ConfigDict(extra="forbid")

    # a larger upload is refused with 413 before (Content-Length) or while (chunked) it streams
    max_object_bytes: int = Field(default=1 << 30, gt=0)
    # a records post is parsed whole (a JSON array cannot be validated as a stream), so less
    max_records_bytes: int = Field(default=16 << 20, gt=0)
    # events waiting for a worker: past this, ingest answers 429 with Retry-After
    max_backlog: int = Field(default=10_000, gt=0)
    retry_after: float = Field(default=2.0, gt=0)
    # records land as NDJSON objects on this source (default: the first) under a dot-folder,
    # which listings and watches ignore: only the event the API records routes them
    records_source: str | None = None
    records_prefix: str = ".icefloe-records"
    # how long an Idempotency-Key's answer is kept, and how long a first request may stay in
    # flight before a retry may take the key over (the host that took it died)
    idempotency_ttl: float = Field(default=24 * 3600.0, gt=0)
    idempotency_in_flight: float = Field(default=600.0, gt=0)
    # ?wait=commit gives up after this and answers 202 (the data is accepted, not yet committed)
    wait_timeout: float = Field(default=60.0, gt=0)

    _s = field_validator("max_object_bytes", "max_records_bytes", mode="before")(lambda v: _size(v))
    _d = field_validator(
        "retry_after", "idempotency_ttl", "idempotency_in_flight", "wait_timeout", mode="before"
    )(lambda v: _duration(v))

    @field_validator("records_prefix")
    @classmethod
    def _hidden(cls, value: str) -> str:
        if not re.fullmatch(r"\.[A-Za-z0-9_.-]+", value):
            raise ValueError("records_prefix must be one dot-folder name (e.g. .icefloe-records): listings skip it")
        return value


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tokens: list[TokenConfig] = Field(default_factory=list)
    ingest: IngestApiConfig = Field(default_factory=IngestApiConfig)

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, value: list[TokenConfig]) -> list[TokenConfig]:
        seen: set[str] = set()
        for token in value:
            if token.name in seen:
                raise ValueError(f"token name {token.name!r} appears twice")
            seen.add(token.name)
        return value


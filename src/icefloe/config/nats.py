"""`sources.NAME.nats`: a NATS JetStream stream whose messages carry records (type: nats)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["NatsSourceConfig"]


class NatsSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "nats://127.0.0.1:4222"
    stream: str
    # the subjects to take (a filter within the stream); none: all of the stream's
    subject: str | None = None
    # the durable pull consumer every worker of this project shares
    durable: str = "icefloe"
    # what one message holds: NDJSON lines, one JSON document (an object or an array of them),
    # or a CSV document: its header line first, unless csv_header names the columns (then
    # every line of a message is data)
    format: Literal["ndjson", "json", "csv"] = "ndjson"
    csv_header: list[str] | None = None
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)
    # a batch (one event) closes at this many messages, bytes or seconds after its first message
    max_messages: int = Field(default=1000, ge=1, le=100_000)
    max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    max_wait: float = Field(default=0.2, gt=0)
    # the consumer's ack wait: held messages are kept alive with in_progress() well within it
    ack_wait: float = Field(default=30.0, ge=1)
    # messages the worker could not batch (the ledger or the spool failed) go back with
    # nak(delay): this long after the first delivery, doubling with each delivery up to the max
    nak_backoff: float = Field(default=1.0, gt=0)
    nak_max_backoff: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _csv_only(self) -> NatsSourceConfig:
        if self.csv_header is not None and self.format != "csv":
            raise ValueError("csv_header only applies to format: csv")
        if self.csv_header is not None and (not self.csv_header or len(set(self.csv_header)) != len(self.csv_header)):
            raise ValueError("csv_header must name each column once")
        return self

    @field_validator("max_wait", "ack_wait", "nak_backoff", "nak_max_backoff", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        from icefloe.config.models import parse_duration

        return parse_duration(value)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        from icefloe.config.models import parse_size

        return parse_size(value)

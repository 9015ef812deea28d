"""`sources.NAME.notifications`: where an object store's event notifications arrive (hints only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["NotificationConfig"]


class NotificationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["nats", "sqs"]
    # nats: a JetStream stream and a durable pull consumer (notifications sent while no worker ran
    # wait there); without `stream`, a plain subscription (what a worker misses, reconcile finds)
    url: str = "nats://127.0.0.1:4222"
    subject: str | None = None
    stream: str | None = None
    durable: str = "icefloe"
    # sqs: the queue S3 (or SNS) sends to; region/endpoint as for the source
    queue_url: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    # seconds one poll waits for a message (SQS long poll, NATS fetch)
    wait: float = Field(default=1.0, gt=0, le=20)

    @field_validator("wait", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        from icefloe.config.models import parse_duration

        return parse_duration(value)

    @model_validator(mode="after")
    def _needs(self) -> NotificationConfig:
        if self.type == "nats" and not self.subject:
            raise ValueError("a nats notification feed needs `subject` (the subject S3/MinIO publishes to)")
        if self.type == "sqs" and not self.queue_url:
            raise ValueError("an sqs notification feed needs `queue_url`")
        return self

"""`telemetry:` in icefloe.yaml: in-process metrics and OpenTelemetry traces.

    telemetry:
      metrics: true            # count in this process (what /metrics serves); false: no counting at all
      traces: otlp             # none (default) | otlp
      endpoint: http://127.0.0.1:4318/v1/traces   # OTLP over HTTP; unset: the exporter's own default
      protocol: http/json      # http/json (default: the standard library sends it) | http/protobuf (the OpenTelemetry SDK)
      service_name: icefloe

The /metrics endpoint itself is off until asked for (`icefloe run --metrics-port`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["TelemetryConfig"]


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: bool = True
    traces: Literal["none", "otlp"] = "none"
    endpoint: str | None = None
    # http/json needs no extra and imports nothing at start; http/protobuf needs icefloe[otel]
    protocol: Literal["http/json", "http/protobuf"] = "http/json"
    service_name: str = "icefloe"
    # spans waiting to be exported; past this they are dropped, never the worker slowed down
    max_queue: int = 2048

    @field_validator("endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"telemetry.endpoint must be an http(s):// URL (OTLP over HTTP), not {value!r}")
        return value

"""Spans sent as OTLP over HTTP with JSON bodies, by the standard library alone.

The OpenTelemetry SDK with its protobuf exporter (`telemetry.protocol: http/protobuf`) costs a
worker about 1.3 s of imports (the SDK, protobuf, `requests`) before its first file, and about
1.2 ms per file building SDK span objects and encoding them. A `run --once` or a crash-looping
worker pays the imports every time. Every span here is made after its step ended from recorded
times, so none of the SDK's live-span machinery is needed: a span is a tuple handed to a queue,
and a background thread encodes a batch as OTLP/JSON (the `http/json` protocol of the OTLP
spec, which collectors accept on the same /v1/traces endpoint) and POSTs it. A full queue drops
spans, never slows the worker; a collector that is down loses its batches, logged once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from typing import Any

__all__ = ["OtlpJsonExporter", "default_endpoint"]

log = logging.getLogger("icefloe")

# a span as queued: (name, trace id (hex), span id, parent span id (hex, '' for a root), start
# ns, end ns, attributes, error message or None); ids stay as the traceparent spells them
Span = tuple[str, str, int, str, int, int, dict[str, Any], "str | None"]
# OTLP span kind INTERNAL, status code ERROR
_INTERNAL, _ERROR = 1, 2


def default_endpoint() -> str:
    """What the OpenTelemetry exporters default to: the OTEL_EXPORTER_OTLP_* variables, else a
    collector on this host."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    return base.rstrip("/") + "/v1/traces"


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # int64 is a JSON string in the protobuf mapping
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def encode(spans: list[Span], service_name: str) -> bytes:
    """An OTLP ExportTraceServiceRequest as JSON (ids hex, as the OTLP/JSON spec says)."""
    out = []
    for name, trace_id, span_id, parent, start, end, attrs, error in spans:
        span: dict[str, Any] = {
            "traceId": trace_id, "spanId": f"{span_id:016x}", "name": name, "kind": _INTERNAL,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
            "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
            "status": {} if error is None else {"code": _ERROR, "message": error},
        }  # fmt: skip
        if parent and parent != "0" * 16:
            span["parentSpanId"] = parent
        out.append(span)
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "icefloe"}, "spans": out}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


class OtlpJsonExporter:
    """A bounded queue of spans and the thread that sends them in batches (started with the first
    span, so a process that makes none starts nothing)."""

    def __init__(self, endpoint: str, service_name: str, *, max_queue: int = 2048, batch: int = 512,
                 every: float = 1.0, timeout: float = 10.0) -> None:  # fmt: skip
        self.endpoint, self.service_name = endpoint, service_name
        self.max_queue, self.batch, self.every, self.timeout = max_queue, batch, every, timeout
        self._queue: deque[Span] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0
        self.sent = 0
        self._failed_once = False

    def add(self, span: Span) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(span)  # deque.append is atomic: no lock on the worker's path
        if self._thread is None:
            with self._wake:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="icefloe-otlp", daemon=True)
                    self._thread.start()
        if len(self._queue) >= self.batch:
            with self._wake:
                self._wake.notify()

    def _take(self) -> list[Span]:
        spans: list[Span] = []
        while self._queue and len(spans) < self.batch:
            spans.append(self._queue.popleft())
        return spans

    def _loop(self) -> None:
        while True:
            with self._wake:
                if not self._closed and len(self._queue) < self.batch:
                    self._wake.wait(self.every)
                closed = self._closed
            while spans := self._take():
                self._send(spans)
            if closed:
                return

    def _send(self, spans: list[Span]) -> None:
        import urllib.request

        request = urllib.request.Request(
            self.endpoint, data=encode(spans, self.service_name), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
            self.sent += len(spans)
        except Exception as exc:  # noqa: BLE001 - a collector that is down must not stop the worker
            if not self._failed_once:
                self._failed_once = True
                log.warning("tracing: could not send %d span(s) to %s: %s (later failures are not logged)", len(spans), self.endpoint, exc)

    def shutdown(self) -> None:
        """Send what is queued (the process is about to exit), then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(self.timeout)

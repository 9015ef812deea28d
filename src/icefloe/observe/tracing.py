"""OpenTelemetry spans per event step: land, lease, read, transform, check, commit.

One event is one trace, across every worker that touches it: landing makes (or joins) a trace and
the ledger keeps its W3C `traceparent` on the event (`events.traceparent`); each worker that
leases the event later makes its spans children of it. A `traceparent` header on the HTTP API
joins the caller's trace (`context_from_traceparent`, then `Lander.land_object(traceparent=)`).

Spans are made after the fact from the times the engine records anyway (the pipeline's step
timer, the commit's start and end) and handed to the exporter's processor as finished spans, so
the hot path gains no context switching, and nothing when tracing is off: `Tracing` is then a no-op whose methods return at once, and OpenTelemetry
is never imported (`pip install 'icefloe[otel]'` brings it).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import random
import re
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from icefloe.errors import NotInstalledError

if TYPE_CHECKING:
    from icefloe.config.telemetry import TelemetryConfig
    from icefloe.ledger.base import Event
    from icefloe.runtime import Runtime

__all__ = [
    "JsonTracing", "OtelTracing", "Tracing", "context_from_traceparent", "event_traceparent", "new_traceparent", "open_tracing",
    "trace_id_of", "tracing_for", "use_tracing",
]  # fmt: skip

log = logging.getLogger("icefloe")

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def context_from_traceparent(header: str | None) -> str | None:
    """A caller's W3C `traceparent` header, checked and normalised, to land with (the event's
    trace joins the caller's); None when it is missing or malformed (a new trace is made then:
    a bad header must not fail the request)."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None:
        return None
    version, trace, span, flags = match.groups()
    if version == "ff" or trace == "0" * 32 or span == "0" * 16:  # invalid per the W3C spec
        return None
    return f"00-{trace}-{span}-{flags}"


def new_traceparent() -> str:
    """A new trace, for a landing without a caller's trace and with tracing off: the event still
    has one trace id, in the ledger and in every log line about it."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def event_traceparent(ev: Event) -> str:
    """The event's trace; one landed before traces existed gets one made from its id, the same
    in every worker, so its spans still form one trace."""
    if ev.traceparent:
        return ev.traceparent
    digest = hashlib.sha256(ev.id.encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent[3:35] if traceparent and len(traceparent) >= 35 else None


class Tracing:
    """Tracing off: every method is a no-op."""

    enabled = False

    def start_land(self, parent: str | None, **attributes: Any) -> tuple[str, Any]:
        """Before an object is recorded: (the traceparent its events keep, a handle for `end`)."""
        return parent or new_traceparent(), None

    def end(self, handle: Any, error: BaseException | None = None) -> None:
        """End the span `start_land` began."""

    def span(
        self, ev: Event, name: str, start: float, end: float, error: BaseException | str | None = None, **attributes: Any
    ) -> None:
        """A finished step of `ev` (times in epoch seconds), a child of the event's trace."""

    def shutdown(self) -> None:
        """Export what is queued (the process is about to exit)."""


class OtelTracing(Tracing):
    """Finished spans handed straight to an OpenTelemetry SDK span processor (and from it to the
    exporter). Every span here is made after its step ended, from recorded times, so the
    tracer's live-span machinery (sampler, context, locks, limits) would only cost time: a
    `ReadableSpan` is what a processor receives anyway. The span's parent is the event's
    stored traceparent, so its sampled flag decides (a caller that does not sample is obeyed).

    `exporter`: an SDK exporter used through a synchronous processor (tests pass the in-memory
    one); else OTLP over HTTP, batched on a background thread with a bounded queue."""

    enabled = True

    def __init__(self, config: TelemetryConfig, exporter: Any = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import ReadableSpan
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as exc:
            raise NotInstalledError("opentelemetry-sdk", "otel") from exc
        self._trace, self._span_type = trace, ReadableSpan
        self._ok, self._error = trace.Status(trace.StatusCode.UNSET), trace.StatusCode.ERROR
        self.resource = Resource.create({"service.name": config.service_name})
        self.scope = InstrumentationScope("icefloe")
        if exporter is not None:
            self.processor: Any = SimpleSpanProcessor(exporter)
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise NotInstalledError("opentelemetry-exporter-otlp-proto-http", "otel") from exc
            otlp = OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else OTLPSpanExporter()
            self.processor = BatchSpanProcessor(otlp, max_queue_size=config.max_queue)
        atexit.register(self.shutdown)  # `run --once` exits right after its last commit: send those spans

    def _context(self, traceparent: str) -> Any:
        tid, sid, flags = traceparent[3:35], traceparent[36:52], traceparent[53:55]
        return self._trace.SpanContext(int(tid, 16), int(sid, 16), is_remote=True, trace_flags=self._trace.TraceFlags(int(flags, 16)))

    def _emit(self, name: str, parent: Any, span_id: int, start: float, end: float, attrs: dict[str, Any], error: Any) -> None:
        if not parent.trace_flags.sampled:
            return
        context = self._trace.SpanContext(parent.trace_id, span_id, is_remote=False, trace_flags=parent.trace_flags)
        status = self._ok
        if error is not None:
            status = self._trace.Status(self._error, str(error))
            attrs["error.type"] = type(error).__name__ if isinstance(error, BaseException) else "error"
        self.processor.on_end(self._span_type(
            name, context=context, parent=parent if parent.span_id else None, resource=self.resource,
            attributes=attrs, status=status, start_time=int(start * 1e9), end_time=int(end * 1e9),
            instrumentation_scope=self.scope,
        ))  # fmt: skip

    def start_land(self, parent: str | None, **attributes: Any) -> tuple[str, Any]:
        span_id = random.getrandbits(64) or 1
        if parent:
            context = self._context(parent)
        else:  # a root: a new trace id, no parent span
            context = self._trace.SpanContext(random.getrandbits(128) or 1, 0, is_remote=True, trace_flags=self._trace.TraceFlags(1))
        traceparent = f"00-{context.trace_id:032x}-{span_id:016x}-{int(context.trace_flags):02x}"
        return traceparent, (context, span_id, time.time(), _attrs(attributes))

    def end(self, handle: Any, error: BaseException | None = None) -> None:
        if handle is not None:
            context, span_id, started, attrs = handle
            self._emit("land", context, span_id, started, time.time(), attrs, error)

    def span(
        self, ev: Event, name: str, start: float, end: float, error: BaseException | str | None = None, **attributes: Any
    ) -> None:
        attrs = {"icefloe.event_id": ev.id, "icefloe.pipeline": ev.pipeline or "", "icefloe.source": ev.source,
                 "icefloe.attempt": ev.attempts, **_attrs(attributes)}  # fmt: skip
        self._emit(name, self._context(event_traceparent(ev)), random.getrandbits(64) or 1, start, end, attrs, error)

    def shutdown(self) -> None:
        try:
            self.processor.shutdown()
        except Exception:  # noqa: BLE001 - a collector gone at exit loses its last spans, nothing else
            log.debug("tracing shutdown failed", exc_info=True)


class JsonTracing(Tracing):
    """`traces: otlp` with `protocol: http/json` (the default): the same spans as OtelTracing,
    sent by observe/otlp.py without importing OpenTelemetry (its imports were ~1.3 s a process)."""

    enabled = True

    def __init__(self, config: TelemetryConfig, exporter: Any = None) -> None:
        from icefloe.observe.otlp import OtlpJsonExporter, default_endpoint

        self.exporter = exporter or OtlpJsonExporter(config.endpoint or default_endpoint(), config.service_name,
                                                     max_queue=config.max_queue)  # fmt: skip
        atexit.register(self.shutdown)  # `run --once` exits right after its last commit: send those spans

    def start_land(self, parent: str | None, **attributes: Any) -> tuple[str, Any]:
        span_id = random.getrandbits(64) or 1
        if parent:
            trace, parent_span, flags = parent[3:35], parent[36:52], parent[53:55]
        else:  # a root: a new trace id, no parent span
            trace, parent_span, flags = f"{random.getrandbits(128) or 1:032x}", "", "01"
        return f"00-{trace}-{span_id:016x}-{flags}", (trace, span_id, parent_span, flags, time.time(), attributes)

    def end(self, handle: Any, error: BaseException | None = None) -> None:
        if handle is not None:
            trace, span_id, parent, flags, started, attributes = handle
            if int(flags, 16) & 1:
                self._add("land", trace, span_id, parent, started, time.time(), _attrs(attributes), error)

    def _add(self, name: str, trace: str, span_id: int, parent: str, start: float, end: float, attrs: dict[str, Any], error: Any) -> None:
        message = None
        if error is not None:
            message = str(error)
            attrs["error.type"] = type(error).__name__ if isinstance(error, BaseException) else "error"
        self.exporter.add((name, trace, span_id, parent, int(start * 1e9), int(end * 1e9), attrs, message))

    def span(
        self, ev: Event, name: str, start: float, end: float, error: BaseException | str | None = None, **attributes: Any
    ) -> None:
        parent = event_traceparent(ev)
        if not int(parent[53:55], 16) & 1:
            return  # the trace's caller does not sample it
        attrs = {"icefloe.event_id": ev.id, "icefloe.pipeline": ev.pipeline or "", "icefloe.source": ev.source,
                 "icefloe.attempt": ev.attempts}  # fmt: skip
        for k, v in attributes.items():
            if v is not None:
                attrs["icefloe." + k] = v
        self._add(name, parent[3:35], random.getrandbits(64) or 1, parent[36:52], start, end, attrs, error)

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:  # noqa: BLE001 - a collector gone at exit loses its last spans, nothing else
            log.debug("tracing shutdown failed", exc_info=True)


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    # OpenTelemetry takes str, bool, int, float; a None would be dropped with a warning
    return {f"icefloe.{k}": v for k, v in values.items() if v is not None}


def open_tracing(config: TelemetryConfig) -> Tracing:
    """`telemetry.traces`: none (the no-op) or otlp (`protocol`: http/json by the standard
    library, or http/protobuf through the OpenTelemetry SDK)."""
    if config.traces == "none":
        return Tracing()
    if config.protocol == "http/json":
        return JsonTracing(config)
    return OtelTracing(config)


_BY_RUNTIME: weakref.WeakKeyDictionary[Runtime, Tracing] = weakref.WeakKeyDictionary()
_BY_RUNTIME_LOCK = threading.Lock()


def tracing_for(runtime: Runtime) -> Tracing:
    """The runtime's tracing, opened from its `telemetry:` config on first use."""
    with _BY_RUNTIME_LOCK:
        found = _BY_RUNTIME.get(runtime)
        if found is None:
            found = _BY_RUNTIME[runtime] = open_tracing(runtime.config.telemetry)
        return found


def use_tracing(runtime: Runtime, tracing: Tracing) -> None:
    """Trace the runtime's engines through `tracing` (a test's in-memory exporter, a host's own)."""
    with _BY_RUNTIME_LOCK:
        _BY_RUNTIME[runtime] = tracing

"""`icefloe serve` carries the telemetry: /metrics (read scope) and the caller's traceparent."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from icefloe import Project
from icefloe.config.telemetry import TelemetryConfig
from icefloe.observe.tracing import OtelTracing, use_tracing
from icefloe.web.app import create_app
from tests.web.apiproject import api_project, bearer

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NDJSON = b'{"id": 1, "page": "/a"}\n'


def test_metrics_are_served_to_a_reader_only(tmp_path: Path) -> None:
    with Project(api_project(tmp_path / "p")) as project:
        client = TestClient(create_app(project))
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer("loader")).status_code == 403
        client.post("/v1/records/clicks", content=NDJSON, headers={**bearer(), "content-type": "application/x-ndjson"})
        answer = client.get("/metrics", headers=bearer("reader"))
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        assert 'icefloe_backlog_events{pipeline="clicks"} 1.0' in answer.text  # the post waits for a worker
        assert "icefloe_build_info" in answer.text


def test_a_records_post_joins_the_callers_trace(tmp_path: Path) -> None:
    with Project(api_project(tmp_path / "p")) as project:
        spans = InMemorySpanExporter()
        use_tracing(project.runtime, OtelTracing(TelemetryConfig(traces="otlp"), exporter=spans))
        client = TestClient(create_app(project))
        headers = {**bearer(), "content-type": "application/x-ndjson", "traceparent": CALLER}
        answer = client.post("/v1/records/clicks", content=NDJSON, headers=headers)
        assert answer.status_code == 202
        (event_id,) = [e["id"] for e in answer.json()["events"]]
        stored = project.ledger.get(event_id)
        assert stored is not None and stored.traceparent is not None
        assert stored.traceparent.split("-")[1] == CALLER.split("-")[1]
        (land,) = spans.get_finished_spans()
        assert land.name == "land" and f"{land.parent.span_id:016x}" == CALLER.split("-")[2]  # type: ignore[union-attr]

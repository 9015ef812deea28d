"""`traces: otlp` (protocol http/json, the default): spans POSTed as OTLP/JSON by the standard
library, the same trace and parent as the SDK path, and OpenTelemetry never imported."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from icefloe import Project
from icefloe.config.telemetry import TelemetryConfig
from icefloe.observe.tracing import JsonTracing, context_from_traceparent, open_tracing, use_tracing
from tests.helpers import ORDERS, csv_file, make_project

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Collector(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/json"
        _Collector.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def _spans() -> list[dict[str, Any]]:
    found = []
    for body in _Collector.bodies:
        for rs in body["resourceSpans"]:
            assert rs["resource"]["attributes"] == [{"key": "service.name", "value": {"stringValue": "icefloe"}}]
            for ss in rs["scopeSpans"]:
                found += ss["spans"]
    return found


def _attr(span: dict[str, Any], key: str) -> Any:
    (value,) = [a["value"] for a in span["attributes"] if a["key"] == key]
    return next(iter(value.values()))


def test_otlp_is_json_over_http_by_default_without_the_sdk() -> None:
    assert isinstance(open_tracing(TelemetryConfig(traces="otlp", endpoint="http://127.0.0.1:9/v1/traces")), JsonTracing)


def test_json_spans_join_the_callers_trace_and_the_events(tmp_path: Path, collector: str) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    csv_file(root / "landing" / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    project = Project(root)
    tracing = JsonTracing(TelemetryConfig(traces="otlp", endpoint=collector))
    use_tracing(project.runtime, tracing)
    (ev,) = project.engine().land(project.sources["landing"], "a.csv", traceparent=context_from_traceparent(CALLER))
    project.run(once=True)
    tracing.shutdown()  # sends what is queued
    spans = _spans()
    mine = [s for s in spans if s["traceId"] == CALLER.split("-")[1]]
    assert {"land", "lease", "read", "commit"} <= {s["name"] for s in mine}, [s["name"] for s in spans]
    (land,) = [s for s in mine if s["name"] == "land"]
    assert land["parentSpanId"] == CALLER.split("-")[2]
    stored = project.ledger.get(ev.id)
    assert stored is not None and stored.traceparent is not None
    # every step's span is a child of the landing span the ledger kept
    assert {s["parentSpanId"] for s in mine if s["name"] != "land"} == {stored.traceparent.split("-")[2]} == {land["spanId"]}
    commit = next(s for s in mine if s["name"] == "commit")
    assert _attr(commit, "icefloe.table") == "sales.orders" and _attr(commit, "icefloe.event_id") == ev.id
    assert all(int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0 for s in spans)
    failed = [s for s in spans if s["status"].get("code") == 2]
    assert [s["name"] for s in failed] == ["process"] and _attr(failed[0], "error.type") == "DataError"
    project.close()


def test_a_traced_worker_imports_no_opentelemetry_and_sends_its_spans_at_exit(tmp_path: Path, collector: str) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["telemetry"] = {"traces": "otlp", "endpoint": collector}
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    code = (
        "import sys; from icefloe import Project; p = Project(sys.argv[1]); s = p.run(once=True);"
        " assert s.committed == 1, s; p.close();"
        " print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'google.protobuf', 'requests'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert {"land", "lease", "commit"} <= {s["name"] for s in _spans()}  # sent by the exit hook

"""Traces: one event is one trace across workers (the ledger keeps its traceparent), a caller's
`traceparent` is joined, each step is a span; with tracing off OpenTelemetry is never imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from icefloe import Project
from icefloe.config.telemetry import TelemetryConfig
from icefloe.observe.tracing import OtelTracing, context_from_traceparent, event_traceparent, use_tracing
from tests.helpers import ORDERS, csv_file, make_project

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _traced(root: Path) -> tuple[Project, InMemorySpanExporter]:
    project = Project(root)
    exporter = InMemorySpanExporter()
    use_tracing(project.runtime, OtelTracing(TelemetryConfig(traces="otlp"), exporter=exporter))
    return project, exporter


def test_traceparent_headers_are_checked_and_normalised() -> None:
    assert context_from_traceparent(CALLER) == CALLER
    assert context_from_traceparent("  " + CALLER.upper() + " ") == CALLER
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", CALLER[:-1]):  # fmt: skip
        assert context_from_traceparent(bad) is None, bad


def test_one_event_is_one_trace_joining_the_callers_across_two_workers(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "transform": [{"sql": "select * from batch"}], "checks": [{"range": {"amount": [0, None]}}]}
    root = make_project(tmp_path / "p", {"orders": pipeline})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1", "2,2026-01-01 00:00:00,2"])
    lander, landed_spans = _traced(root)
    (ev,) = lander.engine().land(lander.sources["landing"], "a.csv", traceparent=context_from_traceparent(CALLER))
    # the ledger keeps the trace: the caller's trace id, the landing span as the parent
    stored = lander.ledger.get(ev.id)
    assert stored is not None and stored.traceparent is not None
    assert stored.traceparent.split("-")[1] == CALLER.split("-")[1]
    (land,) = landed_spans.get_finished_spans()
    assert land.name == "land" and land.parent is not None and f"{land.parent.span_id:016x}" == CALLER.split("-")[2]
    lander.close()

    worker, spans = _traced(root)  # another process's worker: it knows the event from the ledger only
    worker.engine().drain(reconcile=False)
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert {"lease", "read", "transform", "checks", "commit"} <= set(names), names
    assert {f"{s.context.trace_id:032x}" for s in finished} == {CALLER.split("-")[1]}
    assert {f"{s.parent.span_id:016x}" for s in finished if s.parent} == {stored.traceparent.split("-")[2]}
    commit = next(s for s in finished if s.name == "commit")
    assert commit.attributes is not None and commit.attributes["icefloe.table"] == "sales.orders"
    assert commit.attributes["icefloe.event_id"] == ev.id
    assert all(s.end_time is not None and s.start_time is not None and s.end_time >= s.start_time for s in finished)
    worker.close()


def test_a_failed_event_has_an_error_span_and_an_event_without_a_stored_trace_gets_a_stable_one(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "bad.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    project, spans = _traced(root)
    project.run(once=True)
    (ev,) = project.ledger.events()
    assert ev.state == "dead" and ev.traceparent is not None
    failed = [s for s in spans.get_finished_spans() if s.status.status_code == StatusCode.ERROR]
    assert [s.name for s in failed] == ["process"]
    assert f"{failed[0].context.trace_id:032x}" == ev.traceparent.split("-")[1]
    project.close()
    # a ledger row from before traces (no traceparent): every worker derives the same one
    ev.traceparent = None
    assert event_traceparent(ev) == event_traceparent(ev) and event_traceparent(ev).startswith("00-")


def test_a_worker_never_scraped_imports_neither_opentelemetry_nor_prometheus(tmp_path: Path) -> None:
    # the default config: metrics counted in the process, tracing off
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    code = (
        "import sys; from icefloe import Project; p = Project(sys.argv[1]); s = p.run(once=True);"
        " assert s.committed == 1, s; e = p.ledger.events()[0]; assert e.traceparent, e; p.close();"
        " print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'prometheus_client'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_otlp_config_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from icefloe.errors import NotInstalledError

    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if the extra were not installed
    with pytest.raises(NotInstalledError, match=r"icefloe\[otel\]"):
        OtelTracing(TelemetryConfig(traces="otlp"))


def test_ingest_joins_the_callers_trace(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    path = csv_file(tmp_path / "up" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    project, spans = _traced(root)
    (ev,) = project.ingest([path], traceparent=context_from_traceparent(CALLER))
    assert ev.state == "committed"
    trace_ids = {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()}
    assert trace_ids == {CALLER.split("-")[1]}
    project.close()

"""A catalog that cannot be opened is an outage: events retry with backoff and end dead with a
clear reason, the worker never crashes, and the ledger-only commands still answer."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_DEAD
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project

FAST_RETRY = {"max_attempts": 3, "backoff": "10ms", "max_backoff": "20ms"}

# a port nothing listens on, a database file below a regular file, a REST server that refuses
UNREACHABLE = {
    "postgresql": "postgresql://icefloe:secret@127.0.0.1:1/nope",
    "sqlite": "sqlite:///icefloe.yaml/below-a-file/catalog.db",
    "rest": "http://127.0.0.1:1/",
}



def _project(tmp_path: Path, catalog: str, retry: dict[str, object] = FAST_RETRY, **top: object) -> Path:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "retry": retry}}, catalog=catalog, **top)
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,2.50"])
    return root


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_unopenable_catalog_retries_then_dead_letters_with_the_reason(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, UNREACHABLE[kind])
    code, _, err = invoke(capsys, "run", "-p", str(root), "--once")
    assert code == EXIT_DEAD, err
    (event,) = Project(root).ledger.events()
    assert (event.state, event.attempts, event.error_kind) == ("dead", 3, "StorageUnavailableError")
    assert "is unavailable" in (event.error or "") or "cannot be opened" in (event.error or "")
    assert "gave up after 3 attempts" in (event.error or "")
    assert "secret" not in (event.error or "")  # the password stays out of the ledger
    retries = [s for s in Project(root).ledger.steps(event.id) if s.step == "retrying"]
    assert len(retries) == 2  # two backoffs, then dead on the third attempt


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_ledger_only_commands_work_while_the_catalog_is_down(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, UNREACHABLE[kind])
    invoke(capsys, "run", "-p", str(root), "--once")
    (event,) = Project(root).ledger.events()

    code, out, err = invoke(capsys, "status", "-p", str(root), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    pipeline = next(r for r in rows if r["kind"] == "pipeline")
    assert (pipeline["dead"], pipeline["backlog"]) == (1, 0)
    table = next(r for r in rows if r["kind"] == "table")
    assert table["name"] == "sales.orders" and "catalog" in table["unavailable"]

    code, out, err = invoke(capsys, "status", "-p", str(root))
    assert code == 0 and "tables: unavailable (catalog" in out, err

    code, out, _ = invoke(capsys, "dlq", "list", "-p", str(root), "--format", "json")
    assert code == 0 and [d["event"] for d in json.loads(out)] == [event.id]
    code, out, _ = invoke(capsys, "dlq", "show", "-p", str(root), "--format", "json", event.id)
    assert code == 0 and json.loads(out)[0]["error_kind"] == "StorageUnavailableError"
    code, out, _ = invoke(capsys, "trace", "-p", str(root), "--format", "json", event.id)
    assert code == 0 and [s["step"] for s in json.loads(out)][-1] == "dead"


def test_a_serving_worker_survives_the_outage_and_dead_letters(tmp_path: Path) -> None:
    # scheduled maintenance asks for the catalog whenever the worker is idle: it must wait too
    root = _project(tmp_path, UNREACHABLE["sqlite"], maintenance={"every": "50ms"})
    project, stop = Project(root), threading.Event()
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(project.run(stop=stop)))
    worker.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline and {e.state for e in project.ledger.events()} != {"dead"}:
            time.sleep(0.05)
        assert worker.is_alive()
        (event,) = project.ledger.events()
        assert (event.state, event.attempts) == ("dead", 3), event.error
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive() and outcome and getattr(outcome[0], "dead", None) == 1
    project.close()


def test_events_commit_once_the_catalog_is_back(tmp_path: Path) -> None:
    root = _project(tmp_path, "sqlite:///blocker/catalog.db", {"max_attempts": 50, "backoff": "100ms", "max_backoff": "100ms"})
    blocker = root / "blocker"
    blocker.write_text("a file where the catalog's folder should be\n")
    project = Project(root)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(project.run(once=True)))
    worker.start()
    deadline = time.time() + 30
    while time.time() < deadline and not any(e.state == "retrying" for e in project.ledger.events()):
        time.sleep(0.02)
    blocker.unlink()  # the outage ends
    worker.join(timeout=60)
    assert not worker.is_alive()
    (event,) = project.ledger.events()
    assert event.state == "committed" and event.attempts >= 2
    assert getattr(outcome[0], "committed", None) == 1
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 1}]
    project.close()

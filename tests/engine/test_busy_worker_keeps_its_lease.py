"""A worker busy with one long event (a slow transform, a huge file) keeps saying it is alive and
keeps that event's lease: another worker must not take the event while it is being processed
(doing it twice), and `status` must not call a busy local worker `silent`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from icefloe import Project
from icefloe.observe.workers import worker_state
from tests.helpers import ORDERS, make_project

HOOKS = """
import time

def slow(batch):
    time.sleep(2.5)
    return batch
"""


def test_an_event_in_a_long_transform_keeps_its_lease(tmp_path: Path) -> None:
    pipeline = {**ORDERS, "transform": [{"python": "hooks:slow"}]}
    root = make_project(tmp_path / "p", {"orders": pipeline}, lease="1s")
    (root / "hooks.py").write_text(HOOKS)
    (root / "landing" / "a.csv").write_text("id,ts,amount\n1,2026-01-01 00:00:00,1.00\n")
    project = Project(root)
    engine = project.engine()
    worker = threading.Thread(target=engine.drain)
    worker.start()
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not project.ledger.events(states=["running"]):
            time.sleep(0.02)
        time.sleep(1.8)  # past the 1 s lease, the transform still sleeping
        other = project.ledger.lease("elsewhere:1:abcdef", limit=5, ttl=30)
        assert other == []  # once: the busy worker's event, taken from under it
        (info,) = [w for w in project.ledger.workers() if w.owner == engine.owner]
        assert worker_state(info, time.time(), 1.0) == "alive"
    finally:
        worker.join(timeout=30)
    assert [e.state for e in project.ledger.events()] == ["committed"]
    assert project.ledger.steps(project.ledger.events()[0].id)[1].detail["attempt"] == 1

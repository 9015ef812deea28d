"""A worker that pauses past its lease (a stop-the-world pause, a frozen VM) and wakes up after
another worker took and committed its event: its stale writes are refused by the lease epoch,
so the ledger keeps the new owner's record and the table holds the rows once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.ledger import Event
from tests.helpers import ORDERS, make_project, wait_for

# the first run of the transform pauses until the test says go (then fails, if told to);
# every later run (the other worker's) goes straight through
HOOKS = """
import os, time
from pathlib import Path

HERE = Path(__file__).parent

def pause_once(batch):
    marker = HERE / "paused"
    if marker.exists():
        return batch
    marker.write_text("")
    while not (HERE / "go").exists():
        time.sleep(0.01)
    if (HERE / "fail").exists():
        raise ValueError("woke up and failed")
    return batch
"""


@pytest.mark.parametrize("wakes_to", ["commit", "fail"])
def test_a_paused_worker_that_lost_its_lease_cannot_move_the_ledger_back(tmp_path: Path, wakes_to: str) -> None:
    paused_worker_wakes(tmp_path, wakes_to)


def paused_worker_wakes(tmp_path: Path, wakes_to: str, **config: str) -> None:
    """The scenario, on the default ledger or on the one `config` names (tests/ledger runs it on PostgreSQL)."""
    pipeline = {**ORDERS, "transform": [{"python": "hooks:pause_once"}]}
    root = make_project(tmp_path / "p", {"orders": pipeline}, lease="1s", **config)
    (root / "hooks.py").write_text(HOOKS)
    if wakes_to == "fail":
        (root / "fail").write_text("")
    (root / "landing" / "a.csv").write_text("id,ts,amount\n1,2026-01-01 00:00:00,1.00\n2,2026-01-01 00:00:00,2.00\n")
    paused, other = Project(root), Project(root)
    try:
        slow = paused.engine()
        seen: list[tuple[str, str]] = []
        slow.on_event = lambda ev, state: seen.append((ev.id, state))
        slow.reconcile()

        def until_paused() -> None:
            # step() without start(): no keep-alive thread, so nothing renews the lease while it
            # sleeps; more than one step when the file had not settled at the first
            while not (root / "paused").exists():
                slow.step()
                time.sleep(0.01)

        worker = threading.Thread(target=until_paused)
        worker.start()
        assert wait_for(lambda: (root / "paused").exists(), timeout=30)
        (held,) = paused.ledger.events(states=["running"])
        assert held.lease_expires_at is not None
        assert wait_for(lambda: time.time() > (held.lease_expires_at or 0) + 0.2, timeout=30)

        other.engine().drain()  # takes the expired lease (epoch + 1) and commits the event
        committed = other.ledger.get(held.id)
        assert committed is not None and committed.state == "committed" and committed.epoch == held.epoch + 1

        (root / "go").write_text("")
        worker.join(timeout=60)
        assert not worker.is_alive()
        after = other.ledger.get(held.id)
        assert isinstance(after, Event)
        assert (after.state, after.epoch, after.snapshot_id, after.error) == ("committed", committed.epoch, committed.snapshot_id, None)
        assert [s.step for s in other.ledger.steps(held.id)].count("committed") == 1
        assert seen == []  # the paused worker reports nothing for an event that is not its own
        rows = other.sql("select id from sales.orders order by id").to_pylist()
        assert rows == [{"id": 1}, {"id": 2}]
    finally:
        paused.close()
        other.close()

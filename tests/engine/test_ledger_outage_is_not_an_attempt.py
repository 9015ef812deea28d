"""A ledger outage mid-commit is not the event's failure: the event is handed back, it does not
use up an attempt. Found by the PostgreSQL crash trials: a file whose earlier workers were killed
(each lease counts an attempt) went dead at the one connection drop, its rows already in the table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.errors import LedgerUnavailableError
from tests.helpers import ORDERS, csv_file, make_project


@pytest.mark.parametrize("call", ["renew", "mark_committed"])  # before the table commit, and after it
def test_an_event_with_its_attempts_used_up_survives_a_ledger_drop_at_its_commit(tmp_path: Path, call: str) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    landed = csv_file(project.root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00"])
    os.utime(landed, (1_700_000_000, 1_700_000_000))  # settled long ago: reconcile lands it at once
    engine = project.engine()
    engine.reconcile()
    for n in range(4):  # four workers took it and died (their leases ran out at once)
        (held,) = project.ledger.lease(f"gone-{n}", limit=1, ttl=-1)
    real = getattr(project.ledger, call)
    drops: list[int] = []

    def drop_once(*args: Any, **kwargs: Any) -> Any:
        if not drops:
            drops.append(1)
            raise LedgerUnavailableError("the ledger connection was lost (AdminShutdown)")
        return real(*args, **kwargs)

    setattr(project.ledger, call, drop_once)
    engine.drain(reconcile=False)
    (event,) = project.ledger.events()
    assert drops and event.state == "committed", (event.state, event.error)
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 1}]
    project.close()

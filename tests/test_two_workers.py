"""Two workers on one project: leases split the events, commit conflicts retry, nothing doubles."""

from __future__ import annotations

import threading
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, csv_file, make_project


def test_two_workers_share_the_work_without_duplicates(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "batch": {"max_rows": 50}}})
    for n in range(40):
        csv_file(root / "landing" / f"{n:02d}.csv", "id,ts,amount", [f"{n * 10 + i},2026-01-01 00:00:00,1" for i in range(10)])
    workers = [Project(root), Project(root)]
    for worker in workers:
        worker.engine().reconcile()  # both see every file land; the ledger keeps one event each
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    owners = {e.lease_owner for e in workers[0].ledger.events()}
    assert owners == {None}  # every lease released on commit
    events = workers[0].ledger.events()
    assert len(events) == 40 and {e.state for e in events} == {"committed"}
    rows = workers[0].sql("select count(*) as n, count(distinct id) as d from sales.orders").to_pylist()
    assert rows == [{"n": 400, "d": 400}]
    for worker in workers:
        worker.close()

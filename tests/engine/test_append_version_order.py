"""Issue 8 item 4: an append pipeline commits the versions of one object in landing order, so a
slow worker's older version can never replace the newer one's rows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from icefloe import Project
from tests.helpers import ORDERS, make_project


def _write(path: Path, *ids: int) -> Path:
    path.write_text("id,ts,amount\n" + "".join(f"{i},2026-01-01 00:00:00,1.00\n" for i in ids))
    return path


def test_a_newer_version_waits_for_the_older_one_another_worker_holds(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    path = root / "landing" / "a.csv"
    with Project(root) as project:
        source = project.sources["landing"]
        slow = project.engine()
        slow.owner = "host-a:1:aaaaaa"  # a worker elsewhere, alive, that read v0 and is slow to commit
        (v0,) = slow.land(source, source.key_for(_write(path, 1, 2)))
        (held,) = project.ledger.lease(slow.owner, limit=1, ttl=60)
        out = slow.runners["orders"].run(held, path)
        worker = project.engine()
        (v1,) = worker.land(source, source.key_for(_write(path, 3)))
        drained = threading.Thread(target=worker.drain, daemon=True)
        drained.start()
        time.sleep(1.0)  # room for the worker to commit v1 first, were it allowed to
        state = project.ledger.get(v1.id).state  # type: ignore[union-attr]
        slow._commit("sales.orders", [(held, out)])
        drained.join(timeout=30)
        assert not drained.is_alive()
        assert state == "queued"
        assert [r["id"] for r in project.sql("select id from sales.orders order by id").to_pylist()] == [3]
        assert [project.ledger.get(i).state for i in (v0.id, v1.id)] == ["committed", "committed"]  # type: ignore[union-attr]

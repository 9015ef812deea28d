"""`icefloe sql` over the ledger alone (`icefloe.events`, "where is my data?") answers while the
catalog is down; a query naming a lake table reports the outage, not a missing table."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.errors import StorageUnavailableError
from tests.helpers import ORDERS, csv_file, make_project


def test_ledger_queries_answer_while_the_catalog_is_down(tmp_path: Path) -> None:
    retry = {"max_attempts": 1, "backoff": "10ms", "max_backoff": "10ms"}
    catalog = "sqlite:///icefloe.yaml/below-a-file/catalog.db"
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "retry": retry}}, catalog=catalog)
    csv_file(root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,2.50"])
    assert Project(root).run(once=True).dead == 1
    got = Project(root).sql("select key, state from icefloe.events")
    assert got.to_pylist() == [{"key": "a.csv", "state": "dead"}]
    with pytest.raises(StorageUnavailableError, match="unavailable|cannot be opened"):
        Project(root).sql("select * from sales.orders")
    with pytest.raises(StorageUnavailableError):
        Project(root).sql("select e.state, count(*) from icefloe.events e join sales.orders o on true group by 1")

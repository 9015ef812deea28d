"""A fresh ledger over a table that already holds an event's rows (the ledger was lost or
replaced): the table's history makes the commit a no-op, and the log says so instead of claiming
it committed the rows again to `snapshot None`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from icefloe.engine import Engine
from icefloe.ledger import open_ledger
from icefloe.runtime import Runtime
from tests.engine.fakes import MemoryQuarantine, fake_runtime

ORDERS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"}}


def test_events_already_in_the_table_are_logged_as_such_not_as_committed_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, source = fake_runtime(tmp_path, {"orders": ORDERS})
    source.add("a.csv", b"id\n1\n2\n")
    Engine(first).drain()
    second = Runtime(
        first.config, tmp_path, ledger=open_ledger("sqlite:///:memory:", tmp_path),
        catalog_factory=first._catalog_factory, sources={"mem": source}, quarantine=MemoryQuarantine(),
    )  # fmt: skip
    try:
        with caplog.at_level(logging.INFO, logger="icefloe"):
            Engine(second).drain()
        (event,) = second.ledger.events()
        assert event.state == "committed" and event.snapshot_id is not None
        assert second.catalog.load_table("sales.orders").scan().to_arrow().num_rows == 2
        messages = [r.getMessage() for r in caplog.records]
        assert not [m for m in messages if m.startswith("committed") and "snapshot None" in m]
        assert [m for m in messages if "already in sales.orders" in m]
    finally:
        second.close()
        first.close()

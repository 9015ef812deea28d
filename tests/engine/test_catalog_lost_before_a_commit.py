"""The catalog failing as a batch's commit begins (loading the table) must fail the batch's
events, which then retry: they were silently dropped, left running under a lease nobody would
use until it expired (a minute by default), with nothing in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icefloe.engine import Engine
from icefloe.errors import StorageUnavailableError
from icefloe.lake.writer import TableWriter
from tests.engine.fakes import fake_runtime

ORDERS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"}}


def test_a_catalog_lost_while_loading_the_table_fails_the_batch_so_it_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, source = fake_runtime(tmp_path, {"orders": ORDERS})
    try:
        source.add("a.csv", b"id\n1\n")
        source.add("b.csv", b"id\n2\n")
        engine = Engine(runtime)
        real_load = TableWriter.load
        calls = {"n": 0}

        def flaky(self: TableWriter) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:  # the first load is the commit's: the connection was just cut
                raise StorageUnavailableError("catalog connection was terminated")
            return real_load(self)

        monkeypatch.setattr(TableWriter, "load", flaky)
        engine.reconcile()
        engine.step()
        engine._flush(force=True)
        events = runtime.ledger.events()
        assert calls["n"] >= 1
        assert sorted(ev.state for ev in events) == ["retrying", "retrying"]
        assert all("catalog connection was terminated" in (ev.error or "") for ev in events)
    finally:
        runtime.close()

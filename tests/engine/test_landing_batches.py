"""A reconcile pass lands its objects many to a ledger transaction, and one object the ledger
refuses costs only itself: the batch is landed again one object at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icefloe.engine import Engine
from icefloe.errors import LedgerUnavailableError
from tests.engine.fakes import fake_runtime

ORDERS = {"read": {"format": "csv", "schema": {"id": "long"}}, "write": {"table": "sales.orders"}}


def test_one_refused_object_does_not_keep_the_rest_of_its_batch_from_landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, source = fake_runtime(tmp_path, {"orders": ORDERS})
    try:
        for key in ("a.csv", "b.csv", "c.csv"):
            source.add(key, f"id\n{ord(key[0])}\n".encode())
        ledger = runtime.ledger
        land = ledger.land

        def refusing(**kwargs: Any) -> Any:
            if kwargs["key"] == "b.csv":
                raise LedgerUnavailableError("refused b.csv")
            return land(**kwargs)

        monkeypatch.setattr(ledger, "land", refusing)
        engine = Engine(runtime)
        assert engine.reconcile() == 2
        assert sorted(e.key for e in ledger.events()) == ["a.csv", "c.csv"]
        # no stamp without its events: the next pass hashes and lands b.csv
        assert ledger.object_stamp("mem", "b.csv") is None
        assert ledger.object_stamp("mem", "a.csv")
        monkeypatch.setattr(ledger, "land", land)
        assert engine.reconcile() == 1
        assert sorted(e.key for e in ledger.events()) == ["a.csv", "b.csv", "c.csv"]
    finally:
        runtime.close()

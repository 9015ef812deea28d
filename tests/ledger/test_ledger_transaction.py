"""`transaction()`: the ledger calls made inside it commit together, or none of them does."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.errors import LedgerUnavailableError
from icefloe.ledger import Ledger
from icefloe.ledger.sql_side import SqlBase
from tests.ledger.conftest import BACKENDS, ledger_uri


def _land(ledger: Ledger, key: str) -> None:
    ledger.land(source="landing", key=key, uri=f"file:///x/{key}", content_hash="h", size=1, pipelines=["orders"])


def test_calls_inside_a_transaction_commit_together(ledger: Ledger) -> None:
    assert isinstance(ledger, SqlBase)
    with ledger.transaction():
        _land(ledger, "a.csv")
        ledger.set_object_stamp("landing", "a.csv", "s1")
        _land(ledger, "b.csv")
        # reads inside see the transaction's own writes
        assert [e.key for e in ledger.object_events("landing", "b.csv")] == ["b.csv"]
    assert sorted(e.key for e in ledger.events()) == ["a.csv", "b.csv"]
    assert ledger.object_stamp("landing", "a.csv") == "s1"


def test_a_failure_inside_a_transaction_rolls_every_call_back(ledger: Ledger) -> None:
    assert isinstance(ledger, SqlBase)
    _land(ledger, "before.csv")
    with pytest.raises(LedgerUnavailableError), ledger.transaction():
        _land(ledger, "a.csv")
        ledger.set_object_stamp("landing", "a.csv", "s1")
        raise LedgerUnavailableError("gone")
    assert [e.key for e in ledger.events()] == ["before.csv"]
    assert ledger.object_stamp("landing", "a.csv") is None
    # and the ledger goes on as usual afterwards
    _land(ledger, "after.csv")
    assert len(ledger.events()) == 2


@pytest.mark.parametrize("kind", [b for b in BACKENDS if b != "sqlite-memory"])
def test_nothing_of_a_transaction_is_seen_by_another_connection_before_it_commits(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from icefloe.ledger import open_ledger

    uri = ledger_uri(kind, request)
    writer, reader = open_ledger(uri, tmp_path), open_ledger(uri, tmp_path)
    try:
        assert isinstance(writer, SqlBase)
        with writer.transaction():
            _land(writer, "a.csv")
            _land(writer, "b.csv")
            assert reader.count() == 0
        assert reader.count() == 2
    finally:
        writer.close()
        reader.close()

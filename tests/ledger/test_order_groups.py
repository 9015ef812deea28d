"""Order groups: pipelines sharing a table follow one landing order when one of them is ordered."""

from __future__ import annotations

import time

from icefloe.ledger import Ledger
from tests.ledger.test_ledger_contract import _land


def test_an_older_retrying_event_holds_back_newer_events_of_its_group(ledger: Ledger) -> None:
    _land(ledger, key="old.csv", pipelines=["changes"])
    time.sleep(0.002)
    _land(ledger, key="new.csv", pipelines=["base"])
    _land(ledger, key="elsewhere.csv", pipelines=["other"])
    ordered, groups = ["changes", "base"], {"changes": "t.mix", "base": "t.mix"}
    (old,) = ledger.lease("w", limit=1, ttl=30, ordered=ordered, groups=groups)
    ledger.mark_failed(old.id, error="flaky", kind="OSError", transient=True, backoff=1000, max_backoff=1000)
    # new.csv is of another pipeline, but of the same table: it must not overtake old.csv
    assert [e.key for e in ledger.lease("w", limit=5, ttl=30, ordered=ordered, groups=groups)] == ["elsewhere.csv"]
    # without groups, ordering is per pipeline as before
    assert [e.key for e in ledger.lease("w", limit=5, ttl=30, ordered=ordered)] == ["new.csv"]

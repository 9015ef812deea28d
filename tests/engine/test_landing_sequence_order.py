"""Landing order is the ledger's sequence: on PostgreSQL several hosts land at once and their
`landed_at` times come from different moments of one clock, so the sequence decides which of
two landings is the newer (the one an overwrite or replace_source table keeps)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog

from icefloe.config import WriteConfig
from icefloe.engine.shared import in_runs
from icefloe.lake import Staged, TableWriter, open_catalog
from icefloe.ledger import Event


def _event(id: str, seq: int, landed_at: float) -> Event:
    return Event(id=id, source="s", key=id, uri="", content_hash=id, size=1, pipeline="p", state="running", landed_at=landed_at, seq=seq)


def _staged(event: str, rows: list[int], *, seq: int, landed_at: float) -> Staged:
    data = pa.table({"id": rows, "_icefloe_event": [event] * len(rows), "_icefloe_source": ["s:" + event] * len(rows)})
    return Staged(event, "s:obj", data, landed_at, seq=seq)


def test_runs_follow_the_landing_sequence_not_the_landing_clock() -> None:
    later_clock = _event("a", seq=1, landed_at=20.0)
    earlier_clock = _event("b", seq=2, landed_at=10.0)
    runs = in_runs([(earlier_clock, None), (later_clock, None)], key=lambda ev: "same")
    assert [ev.id for ev, _ in runs[0]] == ["a", "b"]


def test_the_overwrite_keeps_the_landing_with_the_higher_sequence(tmp_path: Path) -> None:
    catalog: Catalog = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    writer = TableWriter(catalog, WriteConfig(table="s.t", mode="overwrite"))
    # b landed after a (sequence 2 > 1), though its host's clock said earlier
    writer.commit([_staged("a", [1], seq=1, landed_at=20.0), _staged("b", [2], seq=2, landed_at=10.0)])
    assert catalog.load_table("s.t").scan().to_arrow().column("id").to_pylist() == [2]

"""A batch of more than `INLINE_MAX` events (its ids in an events file, `lake.events`) is still
committed exactly once when the ledger does not know it was: the table's history proves it."""

from __future__ import annotations

from pathlib import Path

from icefloe.engine import Engine
from icefloe.lake.events import EVENTS_FILE_PROPERTY, INLINE_MAX
from icefloe.ledger import open_ledger
from icefloe.runtime import Runtime
from tests.engine.fakes import MemoryQuarantine, fake_runtime

ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long"}},
    "write": {"table": "sales.orders"},
    "batch": {"max_rows": 1_000_000, "max_wait": "60s"},
}
FILES = INLINE_MAX + 1


def test_a_large_batch_is_not_written_again_by_a_worker_whose_ledger_lost_it(tmp_path: Path) -> None:
    first, source = fake_runtime(tmp_path, {"orders": ORDERS})
    for n in range(FILES):
        source.add(f"f{n:04d}.csv", f"id\n{n}\n".encode())
    Engine(first).drain()
    table = first.catalog.load_table("sales.orders")
    assert any(s.summary and s.summary[EVENTS_FILE_PROPERTY] for s in table.metadata.snapshots)
    # the same objects, a ledger that never saw their commit (lost, or a crash before it was told)
    second = Runtime(
        first.config, tmp_path, ledger=open_ledger("sqlite:///:memory:", tmp_path),
        catalog_factory=first._catalog_factory, sources={"mem": source}, quarantine=MemoryQuarantine(),
    )  # fmt: skip
    try:
        Engine(second).drain()
        events = second.ledger.events()
        assert len(events) == FILES and {e.state for e in events} == {"committed"}
        assert all(e.snapshot_id is not None for e in events)
        ids = second.catalog.load_table("sales.orders").scan().to_arrow().column("id").to_pylist()
        assert sorted(ids) == list(range(FILES))  # each row once
    finally:
        second.close()
        first.close()

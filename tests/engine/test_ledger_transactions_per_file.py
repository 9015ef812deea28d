"""A worker makes few ledger transactions per file: on PostgreSQL each one waits for a WAL flush
(~5 ms on a small VM), and one worker spent half its time there at ~5 transactions per file.

A batch's step records ride with the next lease, or with the fenced renewal before the commit; the
committed marks and the commit step are one transaction; landing an object and its stamp are one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icefloe.engine import Engine
from icefloe.ledger import open_ledger
from icefloe.runtime import Runtime
from tests.engine.fakes import MemorySource, fake_runtime
from tests.helpers import CountedCommits
from tests.ledger.conftest import pg_database, pg_uri  # noqa: F401 - fixtures for the PostgreSQL case

FILES = 40
ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long", "amount": "double"}},
    "checks": [{"range": {"amount": [0, None]}}],
    "write": {"table": "sales.orders"},
}


@pytest.fixture(params=["sqlite-memory", pytest.param("postgresql", marks=pytest.mark.service)])
def built(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Runtime, MemorySource]]:
    runtime, source = fake_runtime(tmp_path, {"orders": ORDERS})
    if request.param == "postgresql":
        runtime.ledger.close()
        runtime.__dict__["ledger"] = open_ledger(request.getfixturevalue("pg_uri"), tmp_path)
    for n in range(FILES):
        source.add(f"orders-{n:03d}.csv", f"id,amount\n{n},{n}.5\n".encode())
    yield runtime, source
    runtime.close()


def test_a_batch_of_files_costs_far_fewer_than_one_ledger_transaction_each(built: tuple[Runtime, MemorySource]) -> None:
    runtime, _ = built
    engine = Engine(runtime)  # leases 16 at a time
    landing = CountedCommits(runtime.ledger)
    assert engine.reconcile() == FILES
    # the objects of a reconcile pass land LAND_BATCH to a transaction with their stamps (it was
    # two transactions per object), then the listing position is saved
    assert landing.count <= 3, f"{landing.count} ledger transactions to land {FILES} files"
    working = CountedCommits(runtime.ledger)
    engine.drain(reconcile=False)
    events = runtime.ledger.events()
    assert [e.state for e in events] == ["committed"] * FILES
    # before: read, checks and staged records one transaction each per file (3 per file, 128 in
    # all); now a lease batch's records ride with the next lease or the commit's renewal
    assert working.count / FILES <= 0.3, f"{working.count} ledger transactions for {FILES} files"
    # and every record is still written, the staged counts before the commit's
    for ev in events:
        steps = [s.step for s in runtime.ledger.steps(ev.id)]
        assert steps == ["landed", "leased", "read", "checks", "staged", "commit", "committed"], steps
        staged = next(s for s in runtime.ledger.steps(ev.id) if s.step == "staged")
        assert staged.detail == {"rows_in": 1, "rows_out": 1, "rows_quarantined": 0}

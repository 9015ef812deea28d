"""Exactly-once under kill -9 with the ledger and the catalog in PostgreSQL, and a dropped connection mid-run.

A few trials of the harness in tests/e2e/crash_harness.py (`python -m bench.crash --postgres
--trials 100` is the full run); ICEFLOE_CRASH_SEED replays a failing seed's choices.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.crash_harness import CrashHarness
from tests.e2e.pgdb import create_database, drop_database

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_kill_9_and_a_connection_drop_with_postgresql_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    seed = int(os.environ.get("ICEFLOE_CRASH_SEED") or random.randrange(2**32))
    print(f"crash trials seed {seed} (replay: ICEFLOE_CRASH_SEED={seed})")
    db = create_database("icefloe_test")
    try:
        harness = CrashHarness(tmp_path / "p", seed=seed, log=print, ledger=db.url, catalog=db.catalog_url, drops=(3,))
        report = harness.run(5)
    finally:
        drop_database(db)
    print(report.summary())
    assert report.ok, report.summary()
    (drop,) = [t for t in report.trials if t.mode == "drop"]
    # the worker's own sessions were among those cut, and it committed again on new ones
    assert drop.dropped_worker >= 1 and drop.recovered_after is not None, report.summary()
    v = report.verdict
    assert v.files >= 20 and v.rows_found == v.rows and v.duplicates == v.missing == 0
    assert set(v.events) == {"committed"}

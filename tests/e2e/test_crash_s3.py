"""Exactly-once from an S3 source under kill -9 and S3 outages, ledger and catalog in PostgreSQL.

A few trials of the harness (tests/e2e/crash_harness.py) with the landing folder replaced by a
bucket on moto behind a `Gate` that goes down and comes back (tests/e2e/s3_chaos.py);
`python -m bench.crash --s3 --postgres --trials 30` is the longer run. ICEFLOE_CRASH_SEED
replays a failing seed's choices.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.pgdb import create_database, drop_database
from tests.e2e.s3_chaos import Gate, s3_harness
from tests.s3server import S3Server

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.mark.timeout(600)  # a loaded machine starts workers slowly (imports alone took 15 s at load 20)
def test_kill_9_and_s3_outages_lose_and_duplicate_nothing(tmp_path: Path, s3_server: S3Server, s3_env: None) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    seed = int(os.environ.get("ICEFLOE_CRASH_SEED") or random.randrange(2**32))
    print(f"crash trials seed {seed} (replay: ICEFLOE_CRASH_SEED={seed})")
    db = create_database("icefloe_test")
    gate = Gate(s3_server.port)
    try:
        harness = s3_harness(
            tmp_path / "p", s3_server.endpoint, gate, seed=seed, log=print, ledger=db.url, catalog=db.catalog_url,
            outage_trials=(2, 3),  # at least two outages whatever the seed draws
            # a worker's start on a busy machine (imports, PostgreSQL) takes seconds of the wait
            interval=(0.3, 0.6), marker_timeout=40.0,
        )  # fmt: skip
        report = harness.run(3)
    finally:
        gate.down()
        drop_database(db)
    print(report.summary())
    assert report.ok, report.summary()
    assert sum(1 for t in report.trials if t.mode == "outage") >= 2
    # the workers felt it: their listings failed while the relay was down
    assert "unreachable" in harness.log_path.read_text(errors="replace"), "no S3 outage showed in the worker log"
    v = report.verdict
    # every object landed is in the ledger, committed, once per pipeline; every row once
    assert v.files >= 10 and v.rows_found == v.rows and v.duplicates == v.missing == 0
    assert set(v.events) == {"committed"} and sum(v.events.values()) == 2 * v.files

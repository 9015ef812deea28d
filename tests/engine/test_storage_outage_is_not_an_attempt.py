"""An object store or catalog that does not answer is not the event's failure: an outage longer
than the event's attempts leaves it retrying, never dead, and it commits once the store is back.
Found by the S3 crash trials: two files whose reads met a 2 s S3 outage went to the dead letters
after five quick retries, their rows missing from the table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.errors import UnreachableError
from icefloe.pipelines.runner import PipelineRunner
from tests.helpers import ORDERS, csv_file, make_project


def test_an_event_survives_a_store_outage_longer_than_its_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = {**ORDERS, "retry": {"max_attempts": 2, "backoff": "0s", "max_backoff": "0s"}}
    project = Project(make_project(tmp_path / "p", {"orders": pipeline}))
    landed = csv_file(project.root / "landing" / "a.csv", "id,ts,amount", ["1,2026-01-01T00:00:00,1.00"])
    os.utime(landed, (1_700_000_000, 1_700_000_000))  # settled long ago: reconcile lands it at once
    engine = project.engine()
    engine.reconcile()
    real = PipelineRunner.run
    outage: list[int] = []

    def unreachable(self: PipelineRunner, *args: Any, **kwargs: Any) -> Any:
        if len(outage) < 6:  # three times the event's attempts
            outage.append(1)
            raise UnreachableError("s3://bucket/a.csv: S3 is unreachable: Could not connect to the endpoint URL")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PipelineRunner, "run", unreachable)
    for _ in range(6):
        engine.drain(reconcile=False)
        (event,) = project.ledger.events()
        assert event.state != "dead", event.error
    engine.drain(reconcile=False)
    (event,) = project.ledger.events()
    assert len(outage) == 6 and event.state == "committed", (len(outage), event.state, event.error)
    assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 1}]
    project.close()

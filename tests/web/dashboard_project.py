"""A project for the dashboard tests: two committed files, one dead of bad data, one dead of an
outage that is over (replaying it commits), and the tokens to look at them with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from icefloe import Project
from icefloe.web.auth import hash_token, new_token
from tests.helpers import ORDERS, csv_file, make_project

HEADER = "id,ts,amount"


@dataclass
class Dashboard:
    root: Path
    tokens: dict[str, str]  # reader (read), ops (operate)
    bad: str  # the event id dead of bad data (landing:bad.csv:2 ...)
    outage: str  # the event id dead of an outage; its file is fine


def build(tmp: Path) -> Dashboard:
    tokens = {"reader": new_token(), "ops": new_token()}
    serve = {"tokens": [{"name": "reader", "hash": hash_token(tokens["reader"]), "scopes": ["read"]},
                        {"name": "ops", "hash": hash_token(tokens["ops"]), "scopes": ["operate"]}]}  # fmt: skip
    root = make_project(tmp / "p", {"orders": ORDERS}, serve=serve)
    with Project(root) as p:
        p.ingest([csv_file(tmp / "a.csv", HEADER, ["1,2026-01-01 00:00:00,1.50", "2,2026-01-01 00:00:00,2.00"])])
        p.ingest([csv_file(tmp / "b.csv", HEADER, ["3,2026-01-02 00:00:00,3.00"])])
        (bad,) = p.ingest([csv_file(tmp / "bad.csv", HEADER, ["x,2026-01-01 00:00:00,1"])])
        # a good file whose event gave up during an outage: landed, leased, failed for good
        csv_file(root / "landing" / "late.csv", HEADER, ["4,2026-01-03 00:00:00,4.00"])
        engine = p.engine()
        (landed,) = engine.land(p.sources["landing"], "late.csv")
        (leased,) = p.ledger.lease("test:1:x", limit=1, ttl=60)
        assert leased.id == landed.id
        p.ledger.mark_failed(leased.id, error="catalog unreachable: connection refused", kind="StorageUnavailableError",
                             transient=False, backoff=0, max_backoff=0, epoch=leased.epoch)  # fmt: skip
        engine.close()
    assert bad.state == "dead"
    return Dashboard(root, tokens, bad.id, leased.id)

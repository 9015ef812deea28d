"""A project whose ledger holds many events, for timing `status`, `dlq list` and `icefloe.events`.

    python -m bench.bigledger DIR [--events 100000]

makes DIR as `icefloe init` does and fills its SQLite ledger straight through SQL (landing
100,000 files one by one would take minutes and time nothing this is for): 90% committed, the
rest queued, dead, retrying, running and unrouted, spread over the scaffold's three pipelines. Then time:

    /usr/bin/time -v icefloe status -p DIR
    /usr/bin/time -v icefloe sql -p DIR "select state, count(*) from icefloe.events group by 1"
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import time
from pathlib import Path

from icefloe.ledger.base import event_id
from icefloe.ledger.sqlite import SqliteLedger
from icefloe.scaffold import init_project

_PIPELINES = {"orders": "orders/2026/{i}.csv", "clicks": "events/{i}.ndjson", "inventory": "inventory/{i}.csv"}
# another host's worker: its leases show under `workers`, and it is not probed as a local pid
_OWNER = "farhost:4242:abcdef"
_TABLES = {"orders": "sales.orders", "clicks": "web.clicks", "inventory": "sales.inventory"}


def _state(i: int) -> str:
    slot = i % 100
    if slot < 90:
        return "committed"
    return ("queued", "queued", "dead", "dead", "retrying", "unrouted", "queued", "dead", "queued", "running")[slot - 90]


def fill(path: Path, events: int) -> None:
    SqliteLedger(path).close()  # the schema, as the code under test makes it
    db = sqlite3.connect(path)
    start = time.time() - events
    names = list(_PIPELINES)
    rows, objects = [], []
    for i in range(events):
        pipeline: str | None = names[i % len(names)]
        state = _state(i)
        key = _PIPELINES[pipeline or "orders"].format(i=i)
        if state == "unrouted":
            pipeline, key = None, f"stray/{i}.bin"
        h = f"{i:064x}"
        landed = start + i
        committed = state == "committed"
        rows.append((
            event_id("landing", key, h, pipeline), "landing", key, f"file:///landing/{key}", h, 1000, pipeline,
            state, 1, 5, "DataError: bad row at line 3" if state == "dead" else None,
            "DataError" if state == "dead" else None, 10 if committed else None, 9 if committed else None,
            1 if committed else None, _TABLES.get(pipeline or "") if committed else None, i if committed else None,
            landed, landed, landed + 0.5 if committed else None, landed + 0.5, 0.0, _OWNER if state == "running" else None,
            time.time() + 3600 if state == "running" else None, f"1000:{landed}", 0,
        ))  # fmt: skip
        objects.append(("landing", key, f"1000:{landed}", h, 0))
    with db:
        db.executemany(f"INSERT INTO events VALUES ({', '.join('?' * len(rows[0]))})", rows)
        db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", objects)
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    init_project(args.dir)
    ledger = args.dir / ".icefloe" / "ledger.db"
    fill(ledger, args.events)
    print(f"{args.dir}: {args.events} events in {ledger}")


if __name__ == "__main__":
    main()

"""The ledger's hot paths alone: N land, then N lease + mark_committed, through the public API.

    python -m bench.ledger_loop [URI] [N]      # URI default sqlite:///ledger.db (in a temp dir)

e.g. `python -m bench.ledger_loop postgresql://postgres@127.0.0.1:5432/scratch`. Prints ms per
call; run it before and after a ledger change on the same machine (the numbers go in the README
or the change's note, never in an assertion).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from icefloe.ledger import open_ledger


def main(uri: str = "sqlite:///ledger.db", n: int = 1000) -> None:
    tag = f"{time.time_ns():x}"  # a second run on one PostgreSQL database lands new objects
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(uri, Path(tmp))
        started = time.perf_counter()
        for i in range(n):
            ledger.land(source="bench", key=f"{tag}/{i}.csv", uri=f"file:///{tag}/{i}", content_hash=f"{tag}{i}", size=1, pipelines=["p"], stamp="s")
        landed = time.perf_counter()
        for _ in range(n):
            (ev,) = ledger.lease("bench", limit=1, ttl=30, pipelines=["p"])
            ledger.mark_committed([ev.id], table="t", snapshot_id=1, stats={}, epochs={ev.id: ev.epoch})
        done = time.perf_counter()
        ledger.close()
    print(f"{uri}: land {1000 * (landed - started) / n:.3f} ms/call, lease+mark_committed {1000 * (done - landed) / n:.3f} ms/pair")


if __name__ == "__main__":
    main(*sys.argv[1:2], *(int(a) for a in sys.argv[2:3]))

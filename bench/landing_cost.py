"""Landing cost vs source size: `Project.ingest` of one 1,000-row CSV into a project whose
landing folder already holds N landed files (recorded in the ledger, stamps and all).

    python bench/landing_cost.py [N ...]          # default 100 2000 10000

The N files are recorded through the ledger directly (committed, not written to the table), so
what grows is the source and the ledger, not the table: table growth is the flat-cost bench's.
It runs against whichever icefloe is importable (PYTHONPATH=<old checkout>/src for a before figure).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from icefloe import Project

ROWS = 1000
TRIES = 15


def _stamp(path: Path) -> str:
    # the folder source's version stamp, spelled out so the script runs against old and new code
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _csv(path: Path, first: int) -> Path:
    lines = ["id,ts,amount", *(f"{i},2026-01-01 00:00:00,{i % 97}.25" for i in range(first, first + ROWS))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _project(root: Path, landed: int) -> None:
    config = {
        "sources": {"landing": {"type": "folder", "path": "landing", "settle": "10ms"}},
        "routes": [{"source": "landing", "match": "**", "pipeline": "orders"}],
        "pipelines": {
            "orders": {
                "read": {"format": "csv", "schema": {"id": "long", "ts": "timestamp", "amount": "decimal(12,2)"}},
                "write": {"table": "bench.orders"},
            }
        },
    }
    (root / "landing").mkdir(parents=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with Project(root) as project:
        ledger = project.ledger
        for n in range(landed):
            path = root / "landing" / f"old-{n:06d}.csv"
            path.write_text(f"id,ts,amount\n{n},2026-01-01 00:00:00,1.00\n")
            key = path.name
            ledger.land(source="landing", key=key, uri=path.as_uri(), content_hash=f"h{n}", size=path.stat().st_size,
                        pipelines=["orders"], stamp=_stamp(path))  # fmt: skip
            ledger.set_object_stamp("landing", key, _stamp(path))
            if n % 500 == 499 or n == landed - 1:
                held = ledger.lease("bench", limit=1000, ttl=600)
                ledger.mark_committed([e.id for e in held], table="bench.orders", snapshot_id=None, stats={})


def measure(landed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="icefloe-landing-") as tmp:
        root = Path(tmp) / "p"
        _project(root, landed)
        times = []
        with Project(root) as project:
            for n in range(TRIES):
                local = _csv(Path(tmp) / f"new-{n}.csv", 10_000_000 + n * ROWS)
                started = time.perf_counter()
                (event,) = project.ingest([local])
                times.append(time.perf_counter() - started)
                assert event.state == "committed", event
        return {"landed": landed, "median_ms": statistics.median(times[1:]) * 1000, "min_ms": min(times) * 1000}


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [100, 2000, 10_000]
    results = [measure(n) for n in sizes]
    base = results[0]["median_ms"]
    print(f"icefloe from {os.path.dirname(sys.modules['icefloe'].__file__ or '')}")
    for r in results:
        print(
            f"{int(r['landed']):>7} landed: ingest median {r['median_ms']:7.1f} ms  min {r['min_ms']:7.1f} ms  ({r['median_ms'] / base:.2f}x)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

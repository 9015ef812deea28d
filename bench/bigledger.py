"""A project whose ledger holds many events, for timing `status`, `dlq list` and `icefloe.events`.

    python -m bench.bigledger DIR [--events 100000] [--time 5]

makes DIR as `icefloe init` does and fills its SQLite ledger straight through SQL (landing
100,000 files one by one would take minutes and time nothing this is for): 90% committed, the
rest queued, dead, retrying, running and unrouted, spread over the scaffold's three pipelines.
`--time N` then runs each of these N times under `/usr/bin/time -v` (interleaved) and prints the
median wall time and the largest peak RSS:

    icefloe status -p DIR
    icefloe sql -p DIR "select state, count(*) from icefloe.events group by 1"
    icefloe dlq list -p DIR
    icefloe trace -p DIR 5.csv

`--older SRC` (a checkout's src folder, e.g. from `git archive`) times that code too, taking turns.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from icefloe.ledger.base import event_id
from icefloe.ledger.migrations import recount
from icefloe.ledger.sql_side import COLUMNS
from icefloe.ledger.sqlite import SqliteLedger
from icefloe.scaffold import init_project

_PIPELINES = {"orders": "orders/2026/{i}.csv", "clicks": "events/{i}.ndjson", "inventory": "inventory/{i}.csv"}
# another host's worker: its leases show under `workers`, and it is not probed as a local pid
_OWNER = "farhost:4242:abcdef"
_TABLES = {"orders": "sales.orders", "clicks": "web.clicks", "inventory": "sales.inventory"}
# the columns a row here sets, in order (the table has more, e.g. traceparent, left NULL)
ROW_COLUMNS = COLUMNS[: COLUMNS.index("seq") + 1]


def _state(i: int) -> str:
    slot = i % 100
    if slot < 90:
        return "committed"
    return ("queued", "queued", "dead", "dead", "retrying", "unrouted", "queued", "dead", "queued", "running")[slot - 90]


def event_rows(events: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(event rows in ROW_COLUMNS order, object rows) of a ledger holding `events` events."""
    return _rows(events)


def _rows(events: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The events table's rows and the objects table's, in the mix the module docstring says."""
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
            time.time() + 3600 if state == "running" else None, f"1000:{landed}", 0, 0, i + 1,
        ))  # fmt: skip
        objects.append(("landing", key, f"1000:{landed}", h, 0))
    return rows, objects


def fill(path: Path, events: int) -> None:
    SqliteLedger(path).close()  # the schema, as the code under test makes it
    db = sqlite3.connect(path)
    rows, objects = _rows(events)
    with db:
        names = ", ".join(f'"{c}"' for c in ROW_COLUMNS)
        db.executemany(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})", rows)
        db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", objects)
        # the landing sequence goes on after the events put here (a new landing takes the next)
        db.execute("UPDATE ledger_sequences SET value = ? WHERE name = 'events'", (events,))
    _recount(db)
    db.close()


def _recount(db: Any) -> None:
    """The counters (migration 7) for the events put in behind the ledger's back: what the
    migration does to an existing ledger, timed."""
    began = time.perf_counter()
    recount(db)
    db.commit()
    print(f"counted the events into the ledger's counters (migration 7's backfill) in {time.perf_counter() - began:.1f} s")


def fill_postgres(uri: str, root: Path, events: int) -> None:
    """The same events in a PostgreSQL ledger (its schema made by the code under test), by COPY."""
    import psycopg

    from icefloe.ledger import open_ledger

    open_ledger(uri, root).close()
    rows, objects = _rows(events)
    with psycopg.connect(uri) as db, db.cursor() as cur:
        with cur.copy(f"COPY events ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in ROW_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        with cur.copy("COPY objects (source, key, stamp, content_hash, version) FROM STDIN") as copy:
            for row in objects:
                copy.write_row(row)
        cur.execute("SELECT setval('events_seq', %s)", (events,))
        cur.execute("ANALYZE events")
    with psycopg.connect(uri) as again:
        _recount(again)


def _commands(root: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "icefloe"]
    return {
        "status": [*cli, "status", "-p", str(root)],
        "sql group by state": [*cli, "sql", "-p", str(root), "select state, count(*) from icefloe.events group by 1"],
        "dlq list": [*cli, "dlq", "list", "-p", str(root)],
        "trace by file name": [*cli, "trace", "-p", str(root), "5.csv"],
    }


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one run."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True, env=env)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert wall and rss, done.stderr
    hours, minutes, seconds = int(wall[1] or 0), int(wall[2]), float(wall[3])
    return hours * 3600 + minutes * 60 + seconds, int(rss[1]) / 1024


def time_commands(root: Path, repeat: int, older: Path | None) -> None:
    """Each command `repeat` times, this code and (with `older`: a checkout's src folder) that
    code taking turns, so a busy machine slows both alike."""
    variants = {"this": dict(os.environ)}
    if older is not None:
        variants["older"] = {**os.environ, "PYTHONPATH": str(older)}
    commands = _commands(root)
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {(c, v): [] for c in commands for v in variants}
    for _ in range(repeat):
        for name, command in commands.items():
            for variant, env in variants.items():
                runs[(name, variant)].append(_timed(command, env))
    for (name, variant), got in runs.items():
        walls = [w for w, _ in got]
        print(f"{name} [{variant}]: median {statistics.median(walls):.2f} s (runs {', '.join(f'{w:.2f}' for w in walls)}),"
              f" peak RSS {max(r for _, r in got):.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--time", type=int, default=0, metavar="N", help="time the commands N times each")
    parser.add_argument("--older", type=Path, default=None, metavar="SRC", help="also time the code in this src folder")
    parser.add_argument("--reuse", action="store_true", help="time the project DIR holds, do not make it again")
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.dir, ignore_errors=True)
        init_project(args.dir)
        ledger = args.dir / ".icefloe" / "ledger.db"
        fill(ledger, args.events)
        print(f"{args.dir}: {args.events} events in {ledger}")
    if args.time:
        time_commands(args.dir, args.time, args.older)


if __name__ == "__main__":
    main()

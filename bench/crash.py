"""`python -m bench.crash --trials N [--seed S] [--postgres | --ledger URI --catalog URI] [--s3]`: kill -9 stress test of exactly-once ingestion.

Each trial starts `python -m icefloe run` on one project while files keep landing, and SIGKILLs it at
a random moment (startup, landing, processing, right after a commit, right after the Iceberg
metadata swap). Afterwards `run --once` drains what is left, and every row must be in `t.rows`
exactly once, every key once in the upsert table `t.latest` at its newest value, and every event
committed in the ledger with the snapshot id the table history shows. Exit status 1 on any problem.
The harness is tests/e2e/crash_harness.py (the pytest suite runs 20 trials of the same thing).

`--postgres` creates a fresh PostgreSQL database (`icefloe_bench_<random>` on 127.0.0.1:5432, or
$ICEFLOE_BENCH_PG) for the ledger and the catalog and drops it afterwards; `--ledger` / `--catalog`
name existing ones. With PostgreSQL, one trial in the middle (`--drops`) also terminates every
session of the database while the worker runs: it must commit again on new connections.

`--s3` lands the files in a bucket on a moto server (started here) instead of a folder, and
adds kill moments of kind `outage`: S3 goes down (a relay in front of moto stops listening and
cuts its connections) for 0.3-2 s while the worker runs, comes back, then the kill
(tests/e2e/s3_chaos.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests` is a package at the repo root
    sys.path.insert(0, str(ROOT))

from tests.e2e.crash_harness import CrashHarness  # noqa: E402
from tests.e2e.pgdb import PgDatabase, create_database, drop_database  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="kill/restart cycles (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="replay the random choices of an earlier run")
    parser.add_argument("--dir", type=Path, default=None, help="project folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the project folder even when all is well")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per trial")
    parser.add_argument("--postgres", action="store_true", help="ledger and catalog in a fresh PostgreSQL database (dropped after)")
    parser.add_argument("--ledger", default=None, help="ledger URI, e.g. postgresql://postgres@127.0.0.1:5432/db")
    parser.add_argument("--catalog", default=None, help="catalog URI, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/db")
    parser.add_argument("--interval", default="0.02,0.08", help="seconds between two landed files, drawn from MIN,MAX (default 0.02,0.08)")
    parser.add_argument("--wait", type=float, default=8.0, help="seconds a trial waits for its kill moment (default 8; more on a busy machine)")
    parser.add_argument("--s3", action="store_true", help="an S3 source on moto, with S3 outages among the kill moments")
    parser.add_argument("--outages", type=int, default=None, help="with --s3: trials that are S3 outages for sure (default a third; others may draw one)")
    parser.add_argument("--drops", type=int, default=None, help="PostgreSQL connection drops, spread over the trials (default 1 with PostgreSQL)")
    args = parser.parse_args(argv)

    low, _, high = args.interval.partition(",")
    interval = (float(low), float(high or low))
    db: PgDatabase | None = create_database() if args.postgres else None
    ledger = args.ledger or (db.url if db else None)
    catalog = args.catalog or (db.catalog_url if db else None)
    postgres = any(u and not u.startswith("sqlite") for u in (ledger, catalog))
    count = args.drops if args.drops is not None else (1 if postgres else 0)
    # the first drop in the middle of the run, with files and commits behind it
    drops = tuple(sorted({max(1, args.trials * (i + 1) // (count + 1)) for i in range(count)}))
    base = args.dir or Path(tempfile.mkdtemp(prefix="icefloe-crash-"))
    started = time.time()
    report = None
    moto = gate = None
    try:
        project = base / "project" if args.dir is None else base
        options: dict[str, Any] = {
            "seed": args.seed, "log": None if args.quiet else print, "ledger": ledger, "catalog": catalog,
            "drops": drops, "interval": interval, "marker_timeout": args.wait,
        }  # fmt: skip
        if args.s3:
            import os

            from bench.s3 import KEYS, _free_port, _moto
            from tests.e2e.s3_chaos import Gate, s3_harness

            os.environ.update(KEYS)
            port = _free_port()
            moto = _moto(port)
            gate = Gate(port)
            outages = args.outages if args.outages is not None else max(1, args.trials // 3)
            every = max(1, args.trials // max(1, outages))
            forced = tuple(n for n in range(2, args.trials + 1, every))[:outages]
            harness = s3_harness(project, f"http://127.0.0.1:{port}", gate, outage_trials=forced, **options)
        else:
            harness = CrashHarness(project, **options)
        report = harness.run(args.trials)
    finally:
        if gate is not None:
            gate.down()
        if moto is not None:
            moto.terminate()
            moto.wait(10)
        # a failed run keeps its database next to its project folder, to look at
        if db is not None and (report is None or report.ok) and not args.keep:
            drop_database(db)
    v = report.verdict
    print()
    print(report.summary())
    print()
    print(f"trials run        {len(report.trials)}")
    print(f"seed              {report.seed}")
    print(f"files             {v.files}")
    print(f"rows              {v.rows}")
    print(f"duplicates found  {v.duplicates + v.key_duplicates}")
    print(f"missing rows      {v.missing + v.missing_keys}")
    print(f"gap kills         {sum(1 for t in report.trials if t.gap_events)} (Iceberg committed, ledger not yet)")
    kept = db is not None and (not report.ok or args.keep)
    print(f"landing interval  {interval[0]}-{interval[1]}s between files")
    if args.s3:
        print(f"S3 outages        {sum(1 for t in report.trials if t.mode == 'outage')} (source on moto behind a relay that went down and up)")
    print(f"ledger, catalog   {report.backend}" + (f" (database {db.name}{' kept' if kept else ', dropped'})" if db else ""))
    for t in (t for t in report.trials if t.mode == "drop"):
        after = f"{t.recovered_after:.2f}s" if t.recovered_after is not None else "never"
        print(f"connection drop   trial {t.n}: {t.dropped} session(s) terminated ({t.dropped_worker} the worker's), committed again after {after}")
    print(f"time              {time.time() - started:.1f}s")
    print(f"result            {'OK' if report.ok else 'FAILED'}")
    if report.ok and not args.keep and args.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"project kept in   {report.root}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bench.crash --trials N [--seed S]`: kill -9 stress test of exactly-once ingestion.

Each trial starts `python -m icefloe run` on one project while files keep landing, and SIGKILLs it at
a random moment (startup, landing, processing, right after a commit, right after the Iceberg
metadata swap). Afterwards `run --once` drains what is left, and every row must be in `t.rows`
exactly once, every key once in the upsert table `t.latest` at its newest value, and every event
committed in the ledger with the snapshot id the table history shows. Exit status 1 on any problem.
The harness is tests/e2e/crash_harness.py (the pytest suite runs 20 trials of the same thing).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `tests` is a package at the repo root
    sys.path.insert(0, str(ROOT))

from tests.e2e.crash_harness import CrashHarness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="kill/restart cycles (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="replay the random choices of an earlier run")
    parser.add_argument("--dir", type=Path, default=None, help="project folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the project folder even when all is well")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per trial")
    args = parser.parse_args(argv)

    base = args.dir or Path(tempfile.mkdtemp(prefix="icefloe-crash-"))
    started = time.time()
    harness = CrashHarness(base / "project" if args.dir is None else base, seed=args.seed, log=None if args.quiet else print)
    report = harness.run(args.trials)
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
    print(f"time              {time.time() - started:.1f}s")
    print(f"result            {'OK' if report.ok else 'FAILED'}")
    if report.ok and not args.keep and args.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"project kept in   {report.root}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

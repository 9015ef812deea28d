"""Benchmark 9: landing one file costs the same whatever the source already holds.

One project, its landing folder grown to 100, 10,000 and 100,000 committed files (`--quick`:
100, 1,000 and 10,000). At each size: the time to land and commit one 1,000-row file through
`Project.ingest([file])`, and through a running `icefloe run` watching the folder (dropped one
at a time, each waited for until committed); the median of K files each, and the ratios between
the sizes.

The fixture grows in place: the files are tiny (one row each, 1,000 to a subfolder) and one
`run --once` per step lands and commits all the new ones in a few large batches (max_rows 1M,
max_wait 60s), so 100,000 committed files cost one bulk run instead of 100,000 single commits.

`python -m bench.landing_scale [--quick] [--sizes 100,10000,100000] [--files K]` runs it alone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    HEADER,
    PYTHON,
    ROOT,
    SEED,
    BenchResult,
    log,
    orders_csv_text,
    run_child,
    stop_process,
    temp_dir,
    write_project,
)

SIZES, QUICK_SIZES = (100, 10_000, 100_000), (100, 1_000, 10_000)
# medians of this many files per size: fewer are at the mercy of whatever else the machine runs
FILES, QUICK_FILES = 30, 20
ROWS = 1_000
TARGET_SPREAD = 1.3
TABLE = "bench.scale"
PER_FOLDER = 1_000


def _grow(landing: Path, have: int, want: int) -> None:
    """Tiny one-row CSVs, numbered on from `have`, 1,000 to a subfolder."""
    for i in range(have, want):
        folder = landing / "fixture" / f"d{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0 or i == have:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.csv").write_text(f"{HEADER}{10_000_000 + i},2026-11-01 00:00:00,fixture,1.00,1,new\n")


def _worker(root: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    with open(root / "worker.log", "ab") as out:
        return subprocess.Popen([PYTHON, "-m", "icefloe", "run", "-p", str(root)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _watched(root: Path, files: list[tuple[str, str]]) -> list[float]:
    """Seconds from rename to committed for each file dropped into a running worker's folder;
    the first is a warm-up (the worker's start and its reconcile of the whole folder)."""
    from bench.latency import _Ledger, _wait_committed

    landing = root / "landing"
    worker = _worker(root)
    ledger = _Ledger(root / ".icefloe" / "ledger.db")
    times: list[float] = []
    try:
        for n, (name, text) in enumerate(files):
            partial = landing / (name + ".part")
            partial.write_text(text)
            t0 = time.time()
            os.replace(partial, landing / name)
            _, committed_at, _ = _wait_committed(ledger, name, worker, timeout=1800 if n == 0 else 120)
            if n:
                times.append(committed_at - t0)
    finally:
        ledger.close()
        stop_process(worker, 120)
    return times


def scale_contender(args: dict[str, Any]) -> dict[str, Any]:
    """Grow the folder size by size; at each, K ingests and K files through a running worker."""
    from icefloe.project import Project

    root = write_project(Path(args["project"]), source_path="landing", table=TABLE, batch={"max_rows": 1_000_000, "max_wait": "60s"})
    landing, inbox = root / "landing", root / "inbox"
    landing.mkdir(exist_ok=True)
    inbox.mkdir(exist_ok=True)
    rng = random.Random(SEED + 9)
    k, have, next_id = args["files"], 0, 1
    out: list[dict[str, Any]] = []
    for size in args["sizes"]:
        started = time.perf_counter()
        _grow(landing, have, size)
        with Project(root) as project:
            summary = project.run(once=True)
        have, fixture_s = size, time.perf_counter() - started
        log(f"  fixture: {size:,} committed files ({summary.committed:,} new) in {fixture_s:.1f}s")
        paths = []
        for _ in range(k + 1):  # the first is a warm-up: the project's catalog, ledger, imports
            path = inbox / f"one-{next_id:07d}.csv"
            path.write_text(orders_csv_text(next_id, ROWS, rng))
            paths.append(path)
            next_id += ROWS
        ingest: list[float] = []
        with Project(root) as project:
            for n, path in enumerate(paths):
                t0 = time.perf_counter()
                events = project.ingest([path])
                if n:
                    ingest.append(time.perf_counter() - t0)
                if [e.state for e in events] != ["committed"]:
                    raise RuntimeError(f"{path.name}: {[(e.state, e.error) for e in events]}")
        dropped = []
        for _ in range(k + 1):
            dropped.append((f"run-{next_id:07d}.csv", orders_csv_text(next_id, ROWS, rng)))
            next_id += ROWS
        watched = _watched(root, dropped)
        with Project(root) as project:
            rows = project.sql(f"select count(*) from {TABLE}").column(0)[0].as_py()
        expected = size + (next_id - 1)
        if rows != expected:
            raise RuntimeError(f"{TABLE} has {rows} rows at size {size}, expected {expected}")
        out.append({"size": size, "fixture_s": fixture_s, "ingest": ingest, "run": watched, "rows": rows})
        log(f"  {size:,} files: ingest median {statistics.median(ingest) * 1000:.0f} ms, run median {statistics.median(watched) * 1000:.0f} ms")
    return {"seconds": sum(s["fixture_s"] for s in out), "sizes": out}


def measure(sizes: tuple[int, ...], files: int, number: int = 9) -> BenchResult:
    result = BenchResult(number, f"land and commit one file into a folder of {' / '.join(f'{s:,}' for s in sizes)} committed files")
    log(f"[{number}] {result.title}")
    got = run_child("bench.landing_scale:scale_contender", {"project": str(temp_dir("scale-")), "sizes": list(sizes), "files": files},
                    label="landing scale", timeout=6 * 3600)  # fmt: skip
    for key, label in (("ingest", "Project.ingest"), ("run", "icefloe run (watching)")):
        medians = [statistics.median(s[key]) * 1000 for s in got["sizes"]]
        spread = max(medians) / min(medians)
        result.row(
            f"{label}: median per file", " / ".join(f"{m:.0f} ms" for m in medians), "",
            " / ".join(f"{m / medians[0]:.2f}x" for m in medians) + " of the smallest",
            f"max/min <= {TARGET_SPREAD}x", spread <= TARGET_SPREAD,
        )  # fmt: skip
        result.row(f"{label}: max/min of the medians", f"{spread:.2f}x")
    result.row("fixture build (run --once per step)", " / ".join(f"{s['fixture_s']:.0f} s" for s in got["sizes"]))
    result.row("rows in table (asserted)", f"{got['sizes'][-1]['rows']:,}", "", "", "= fixture + files", True)
    result.notes += [
        f"Sizes {' / '.join(f'{s:,}' for s in sizes)}: files already landed and committed in the project's landing folder "
        f"(one-row CSVs, {PER_FOLDER:,} to a subfolder), grown in place by one `run --once` per step with large batches.",
        f"At each size, {files} files of {ROWS:,} rows after one warm-up each: `Project.ingest([file])` in a fresh Project, "
        "then `python -m icefloe run -p DIR` started anew (its start-up reconcile is the warm-up file's, not counted), "
        "each file renamed into the folder and waited for until committed (time = ledger committed_at - clock before rename).",
        "Default config otherwise (SQLite catalog and ledger, maintenance on).",
    ]
    result.data = got
    return result


def run(quick: bool) -> BenchResult:
    return measure(QUICK_SIZES if quick else SIZES, QUICK_FILES if quick else FILES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.landing_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes 100 / 1,000 / 10,000 and {QUICK_FILES} files each")
    parser.add_argument("--sizes", default="", help="comma-separated folder sizes (default 100,10000,100000)")
    parser.add_argument("--files", type=int, default=None, help=f"files timed per size (default {FILES})")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip()) or (QUICK_SIZES if args.quick else SIZES)
    from bench.__main__ import print_results
    from bench.flat import save

    result = measure(tuple(sorted(sizes)), args.files or (QUICK_FILES if args.quick else FILES))
    print_results([result])
    save(result, "landing_scale")
    return 0 if all(row["result"] != "FAIL" for row in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

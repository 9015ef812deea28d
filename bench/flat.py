"""Benchmark 8: the per-file cost stays flat as files pile up.

N one-file ingests (1,000 rows each) on the default config, maintenance on, three ways:
`Project.ingest([file])` per file, a running `icefloe run` watching the folder (files dropped one
at a time, each waited for until committed), and raw pyiceberg (`read_csv` + `table.append` per
file, the same SQLite catalog) as the peer. Each runs in its own fresh process. Printed: the mean
of the first and of the last 100 files, their ratio, and p99 vs median over the last 1,000.

`python -m bench.flat --files N` runs it alone (default 10,000; `--quick` 1,200). `--thread` adds
`Project.ingest` with `maintenance.process: false` (runs on the worker's thread, as before the
maintenance process) as a fourth contender, run right after the default one (an A/B; a second
`Project.ingest` at the same time would take the core the maintenance process runs on).
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
    BENCH_DIR,
    PYTHON,
    ROOT,
    SEED,
    BenchResult,
    arrow_types,
    dataset,
    log,
    mean,
    percentile,
    run_child,
    stop_process,
    temp_dir,
    write_orders_csv,
    write_project,
)

ROWS = 1_000
FILES, QUICK_FILES = 10_000, 1_200
# raw pyiceberg keeps every snapshot and 100 metadata files: each append copies and rewrites all
# of them, so its per-file cost grows with the table and 10,000 appends would take hours
PEER_FILES = 1_200
TARGET_DRIFT, TARGET_TAIL = 1.2, 2.0
TABLE = "bench.flat"


def _build(files: int):
    def build(folder: Path) -> None:
        rng = random.Random(SEED + 8)
        for n in range(files + 1):  # file 0 is the warm-up that creates the table
            write_orders_csv(folder / f"flat-{n:05d}.csv", 1 + n * ROWS, ROWS, rng)

    return build


def _files(data: Path, count: int) -> list[Path]:
    return [data / f"flat-{n:05d}.csv" for n in range(count + 1)]


def _progress(label: str, done: int, total: int, times: list[float]) -> None:
    if done % 1000 == 0 or done == total:
        log(f"  {label}: {done}/{total} files, last-100 mean {mean(times[-100:]) * 1000:.1f} ms")


# -- contenders (each in a fresh process, via bench.child) ----------------------------------------


def ingest_contender(args: dict[str, Any]) -> dict[str, Any]:
    """`Project.ingest([file])` once per file; the time of each call."""
    from icefloe.project import Project

    root = write_project(Path(args["project"]), source_path="landing", table=TABLE)
    (root / "landing").mkdir(exist_ok=True)
    if args.get("thread"):
        _set_maintenance(root, {"process": False})
    files = _files(Path(args["data"]), args["files"])
    times: list[float] = []
    spans: list[tuple[float, float]] = []
    with Project(root) as project:
        project.ingest([files[0]])  # creates the table: not counted
        for n, path in enumerate(files[1:], 1):
            started, wall = time.perf_counter(), time.time()
            events = project.ingest([path])
            times.append(time.perf_counter() - started)
            spans.append((wall, wall + times[-1]))
            if [e.state for e in events] != ["committed"]:
                raise RuntimeError(f"{path.name}: {[(e.state, e.error) for e in events]}")
            _progress("ingest", n, len(files) - 1, times)
        rows = project.sql(f"select count(*) from {TABLE}").column(0)[0].as_py()
        snapshots = len(project.catalog.load_table(TABLE).metadata.snapshots)
    return {"seconds": sum(times), "times": times, "rows": rows, "snapshots": snapshots, "waited": _waited(root, spans)}


def _set_maintenance(root: Path, maintenance: dict[str, Any]) -> None:
    import yaml

    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["maintenance"] = maintenance
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _waited(root: Path, spans: list[tuple[float, float]]) -> list[bool]:
    """Per file: did a maintenance run overlap it (from the ledger's job records)? Empty when
    the ledger keeps no such records."""
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True)
        jobs = db.execute("SELECT started_at, ended_at FROM jobs WHERE kind='maintain' AND ended_at IS NOT NULL").fetchall()
        db.close()
    except sqlite3.Error:
        return []
    return [any(a < end and b > start for a, b in jobs) for start, end in spans]


def run_contender(args: dict[str, Any]) -> dict[str, Any]:
    """`icefloe run -p DIR` as a subprocess; each file renamed into the landing folder and waited
    for until committed; its time is the ledger's committed_at minus the clock before the rename."""
    from bench.latency import _Ledger, _wait_committed

    root = write_project(Path(args["project"]), source_path="landing", table=TABLE)
    landing = root / "landing"
    landing.mkdir(exist_ok=True)
    files = _files(Path(args["data"]), args["files"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    with open(root / "worker.log", "wb") as out:
        worker = subprocess.Popen([PYTHON, "-m", "icefloe", "run", "-p", str(root)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    times: list[float] = []
    spans: list[tuple[float, float]] = []
    ledger = None
    try:
        ledger_path = root / ".icefloe" / "ledger.db"
        deadline = time.time() + 60
        while ledger is None or not ledger.ready():
            if ledger is None and ledger_path.exists():
                ledger = _Ledger(ledger_path)
            elif worker.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the worker did not start; log:\n{(root / 'worker.log').read_text()[-3000:]}")
            time.sleep(0.01)
        for n, path in enumerate(files):
            partial = landing / (path.name + ".part")
            partial.write_bytes(path.read_bytes())
            t0 = time.time()
            os.replace(partial, landing / path.name)
            _, committed_at, _ = _wait_committed(ledger, path.name, worker, timeout=120 if n == 0 else 60)
            if n:  # file 0 created the table: not counted
                times.append(committed_at - t0)
                spans.append((t0, committed_at))
                _progress("run", n, len(files) - 1, times)
    finally:
        if ledger is not None:
            ledger.close()
        stop_process(worker, 60)
    from icefloe.project import Project

    with Project(root) as project:
        rows = project.sql(f"select count(*) from {TABLE}").column(0)[0].as_py()
        snapshots = len(project.catalog.load_table(TABLE).metadata.snapshots)
    return {"seconds": sum(times), "times": times, "rows": rows, "snapshots": snapshots, "waited": _waited(root, spans)}


def raw_contender(args: dict[str, Any]) -> dict[str, Any]:
    """What you would write by hand: `read_csv` with the same types, `table.append`, per file."""
    import pyarrow.csv as pacsv
    import pyiceberg.io.pyarrow  # noqa: F401 - what append imports lazily
    from pyiceberg.catalog.sql import SqlCatalog

    work = Path(args["work"])
    files = _files(Path(args["data"]), args["files"])
    convert = pacsv.ConvertOptions(column_types=arrow_types())
    catalog = SqlCatalog("bench", uri=f"sqlite:///{work / 'catalog.db'}", warehouse=f"file://{work / 'warehouse'}")
    catalog.create_namespace("bench")
    first = pacsv.read_csv(files[0], convert_options=convert)
    table = catalog.create_table(TABLE, schema=first.schema)
    table.append(first)  # not counted, like icefloe's warm-up file
    times: list[float] = []
    for n, path in enumerate(files[1:], 1):
        started = time.perf_counter()
        table.append(pacsv.read_csv(path, convert_options=convert))
        times.append(time.perf_counter() - started)
        _progress("pyiceberg", n, len(files) - 1, times)
    table = catalog.load_table(TABLE)
    return {"seconds": sum(times), "times": times, "rows": table.scan().count(), "snapshots": len(table.metadata.snapshots)}


# -- the benchmark ----------------------------------------------------------------------------------


def figures(times: list[float]) -> dict[str, float]:
    """Means of the first and last 100, and p99 vs median of the last 1,000 (in ms)."""
    ms = [t * 1000 for t in times]
    tail = ms[-1000:]
    first, last = mean(ms[:100]), mean(ms[-100:])
    p99, median = percentile(tail, 99), statistics.median(tail)
    return {"first100": first, "last100": last, "drift": last / first, "p99": p99, "median": median, "tail": p99 / median, "max": max(ms)}


def measure(files: int, peer_files: int, number: int = 8, *, thread: bool = False) -> BenchResult:
    result = BenchResult(number, f"flat per-file cost: {files:,} one-file ingests x {ROWS:,} rows, default config, maintenance on")
    log(f"[{number}] {result.title}")
    data = dataset(f"flat-{files}x{ROWS}-s{SEED}", _build(files))
    peer_files = min(files, peer_files)
    runs: dict[str, dict[str, Any]] = {}
    contenders = [
        ("ingest", "bench.flat:ingest_contender", "project", files),
        ("run", "bench.flat:run_contender", "project", files),
        ("pyiceberg", "bench.flat:raw_contender", "work", peer_files),
    ]
    if thread:
        contenders.insert(1, ("ingest-thread", "bench.flat:ingest_contender", "project", files))
    for name, target, extra, count in contenders:
        log(f"  {name}: {count:,} files ...")
        args = {"data": str(data), "files": count, extra: str(temp_dir(f"flat-{name}-")), "thread": name == "ingest-thread"}
        runs[name] = run_child(target, args, label=f"flat {name}", timeout=6 * 3600)
        got = runs[name]
        log(f"  {name}: {got['seconds']:.1f}s, {got['snapshots']} snapshots at the end, peak RSS {got['peak_rss_mb']:.0f} MB")
        assert got["rows"] == (count + 1) * ROWS, f"{name}: {got['rows']} rows, expected {(count + 1) * ROWS}"
    peer = figures(runs["pyiceberg"]["times"])
    labels = [("ingest", "Project.ingest"), ("run", "icefloe run (watching)")]
    if thread:
        labels.insert(1, ("ingest-thread", "Project.ingest, maintenance on its thread (process: false)"))
    for name, label in labels:
        f = figures(runs[name]["times"])
        result.row(
            f"{label}: mean first / last 100", f"{f['first100']:.1f} / {f['last100']:.1f} ms",
            f"pyiceberg: {peer['first100']:.1f} / {peer['last100']:.1f} ms",
            f"icefloe/raw {f['first100'] / peer['first100']:.2f}x / {f['last100'] / peer['last100']:.2f}x",
        )  # fmt: skip
        result.row(
            f"{label}: last 100 / first 100", f"{f['drift']:.2f}x", f"pyiceberg: {peer['drift']:.2f}x", "",
            f"<= {TARGET_DRIFT}x", f["drift"] <= TARGET_DRIFT,
        )  # fmt: skip
        result.row(
            f"{label}: p99 / median of the last 1,000", f"{f['p99']:.1f} / {f['median']:.1f} ms = {f['tail']:.2f}x",
            f"pyiceberg: {peer['p99']:.1f} / {peer['median']:.1f} ms = {peer['tail']:.2f}x", "",
            f"<= {TARGET_TAIL:.0f}x", f["tail"] <= TARGET_TAIL,
        )  # fmt: skip
        waited = runs[name].get("waited") or []
        if len(waited) == len(runs[name]["times"]) and any(waited[-1000:]):
            tail = [t for t, w in zip(runs[name]["times"][-1000:], waited[-1000:], strict=True) if not w]
            g = figures(tail)
            result.row(
                f"{label}: same, files no maintenance run overlapped", f"{g['p99']:.1f} / {g['median']:.1f} ms = {g['tail']:.2f}x",
                f"{sum(waited[-1000:])} of the last 1,000 overlapped one",
            )  # fmt: skip
        result.row(f"{label}: max, snapshots at the end", f"{f['max']:.0f} ms, {runs[name]['snapshots']} snapshots",
                   f"pyiceberg: {peer['max']:.0f} ms, {runs['pyiceberg']['snapshots']} snapshots")  # fmt: skip
    result.row(
        "rows in table (asserted)", f"{(files + 1) * ROWS:,} / {(files + 1) * ROWS:,}", f"pyiceberg: {(peer_files + 1) * ROWS:,}",
        "", "= files x rows", True,
    )  # fmt: skip
    result.notes += [
        f"Default config (folder source, SQLite catalog and ledger, default maintenance policy), a typed CSV append pipeline "
        f"with a not_null check; {files:,} files of {ROWS:,} rows, one warm-up file first (it creates the table; not counted).",
        "Project.ingest: one call per file, timed around the call (copy onto the source, land, read, check, commit, "
        "ledger; maintenance a commit made due runs in the maintenance process of the engine the calls share, "
        "or on its maintenance thread with `process: false`). icefloe run: `python -m icefloe run -p DIR` as a subprocess; "
        "each file written as NAME.part, os.replace'd into the folder, and the next one dropped only once the ledger says "
        "committed; time = committed_at - the clock before the rename.",
        f"pyiceberg: `pyarrow.csv.read_csv` (same types) + `table.append` per file, same SQLite catalog type, no maintenance; "
        f"{peer_files:,} files"
        + (f" (its cost grows with every snapshot it keeps, so {files:,} would take hours): its last 100 are files "
           f"{peer_files - 99:,}-{peer_files:,}." if peer_files < files else "."),
        "Each contender runs in its own fresh process, one after the other; p99 and median over the last 1,000 files "
        "(all files when fewer).",
    ]
    result.data = {name: {k: v for k, v in r.items() if k != "times"} | {"figures": figures(r["times"]),
                   "times_ms": [round(t * 1000, 2) for t in r["times"]]} for name, r in runs.items()}  # fmt: skip
    return result


def save(result: BenchResult, name: str) -> Path:
    """A module run alone keeps its rows and raw times in .bench/NAME.json."""
    import json

    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(result.to_json(), indent=1, default=str) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path


def run(quick: bool) -> BenchResult:
    return measure(QUICK_FILES if quick else FILES, PEER_FILES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=None, help=f"one-file ingests per contender (default {FILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FILES:,} files")
    parser.add_argument("--peer-files", type=int, default=PEER_FILES, help=f"raw pyiceberg appends (default {PEER_FILES:,})")
    parser.add_argument("--thread", action="store_true", help="also Project.ingest with maintenance on the worker's thread (A/B)")
    args = parser.parse_args(argv)
    files = args.files or (QUICK_FILES if args.quick else FILES)
    from bench.__main__ import print_results

    result = measure(files, args.peer_files, thread=args.thread)
    print_results([result])
    save(result, "flat")
    return 0 if all(row["result"] != "FAIL" for row in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

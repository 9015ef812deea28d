"""`python -m bench.workers [--files 2000] [--workers 1,2,4] [--ledgers postgresql,sqlite]`: files/s
through 1, 2, 4 `icefloe run` processes working on one project, and where the scaling stops.

Each run gets a fresh PostgreSQL database (`icefloe_bench_<random>`, dropped afterwards) holding
the Iceberg catalog (pyiceberg's SqlCatalog) and, for `postgresql`, the ledger; the `sqlite` peer
keeps the ledger in `.icefloe/ledger.db` with the same PostgreSQL catalog. The files are landed
first (queued in the ledger), then N workers start and the clock runs until the ledger has nothing
pending. Measured per run: wall time from spawn, the steady rate between the first and the last
commit, CPU seconds of the workers and of the PostgreSQL backends serving the bench database
(psutil), the machine's busy share of its cores, and catalog commits and conflicts counted inside
each worker (a wrapper around `SqlCatalog.commit_table`; the worker is `icefloe run` otherwise).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import CHECKS, PYTHON, ROOT, SCHEMA, SEED, BenchResult, dataset, log, orders_csv_text, temp_dir

if str(ROOT) not in sys.path:  # `tests` is a package at the repo root
    sys.path.insert(0, str(ROOT))

from tests.e2e.pgdb import PgDatabase, backend_pids, create_database, drop_database, transactions

TABLE = "bench.workers"
FILE_ROWS = 20
COMMIT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO committed (\d+) event\(s\), (\d+) row\(s\) to (\S+) in (\d+) ms")


def _build(files: int):
    def build(folder: Path) -> None:
        rng = random.Random(SEED + 9)
        for n in range(files):
            path = folder / f"orders-{n:05d}.csv"
            path.write_text(orders_csv_text(1 + n * FILE_ROWS, FILE_ROWS, rng))
            # written long ago, as far as the source's settle check goes: all land at once
            os.utime(path, (time.time() - 3600, time.time() - 3600))

    return build


def _project(root: Path, data: Path, ledger: str, catalog: str) -> Path:
    """The default config but for the ledger and the catalog: one folder source, one append table."""
    config = {
        "catalog": catalog,
        "warehouse": "warehouse/",
        "ledger": ledger,
        "sources": {"landing": {"type": "folder", "path": str(data.resolve())}},
        "routes": [{"source": "landing", "match": "**/*.csv", "pipeline": "orders"}],
        "pipelines": {"orders": {"read": {"format": "csv", "schema": dict(SCHEMA)}, "checks": CHECKS, "write": {"table": TABLE}}},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _land_all(root: Path) -> int:
    """Queue every file in the ledger without processing any (what a watcher did before the workers came)."""
    from icefloe import Project

    with Project(root) as project:
        return int(project.engine().reconcile())


# -- the worker process -----------------------------------------------------------------------------
def _worker_main(root: Path, stats: Path) -> None:
    """`icefloe run -p ROOT`, with the catalog's commit attempts and conflicts counted for the bench."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import CommitFailedException

    if os.environ.get("ICEFLOE_BENCH_PROFILE"):  # where a worker's time goes, for the report
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
        atexit.register(lambda: (profile.disable(), profile.dump_stats(str(stats.with_suffix(".prof")))))
    counts: dict[str, float] = {"attempts": 0, "conflicts": 0, "commit_seconds": 0.0}
    original = SqlCatalog.commit_table

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        except CommitFailedException:
            counts["conflicts"] += 1
            raise
        finally:
            counts["attempts"] += 1
            counts["commit_seconds"] += time.perf_counter() - started

    SqlCatalog.commit_table = counted  # type: ignore[method-assign]
    _count_ledger(counts)
    atexit.register(lambda: stats.write_text(json.dumps(counts)))
    from icefloe.cli import main

    sys.argv = ["icefloe", "run", "-p", str(root)]
    main()


def _count_ledger(counts: dict[str, float]) -> None:
    """Count the PostgreSQL ledger's write transactions (each waits for its WAL flush) and its
    statements outside one (autocommit reads, a transaction each on the server)."""
    from icefloe.ledger import postgres

    counts.update(ledger_commits=0, ledger_reads=0)
    original = postgres._PgConn.execute

    def execute(self: Any, sql: str, params: Any = None) -> Any:
        if sql == "BEGIN":
            self._bench_open = True
        elif sql in ("COMMIT", "ROLLBACK"):
            counts["ledger_commits"] += sql == "COMMIT"
            self._bench_open = False
        elif not getattr(self, "_bench_open", False):
            counts["ledger_reads"] += 1
        return original(self, sql, params)

    postgres._PgConn.execute = execute  # type: ignore[method-assign]


def _spawn(root: Path, n: int) -> tuple[subprocess.Popen[bytes], Path, Path]:
    logs = root / ".bench"
    logs.mkdir(exist_ok=True)
    out, stats = logs / f"worker-{n}.log", logs / f"worker-{n}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [PYTHON, "-m", "bench.workers", "--worker", str(root), "--stats", str(stats)]
    with out.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, out, stats


def _cpu(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:  # gone already: its share is lost, said in the notes
            pass
    return total


def _sched(pids: list[int]) -> tuple[float, float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one, seconds alive) of the workers' main
    threads, from /proc/PID/task/PID/schedstat: on 2 shared cores, the wait is what a worker
    lost to the other processes; alive minus both is time blocked (database round trips, I/O, idle)."""
    import psutil

    run = wait = alive = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
            alive += time.time() - psutil.Process(pid).create_time()
        except (OSError, psutil.Error):
            continue
        run, wait = run + int(fields[0]) / 1e9, wait + int(fields[1]) / 1e9
    return run, wait, alive


def _busy(before: Any, after: Any) -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the whole machine between two psutil samples."""
    spent = {f: getattr(after, f) - getattr(before, f) for f in after._fields}
    total = sum(spent.values())
    idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
    return total - idle, total


def _commits(log_path: Path) -> list[tuple[float, int, int]]:
    """(time, events, ms) of every `committed ...` line a worker logged."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = COMMIT_LINE.match(line)
        if m and m.group(5) == TABLE:
            at = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            found.append((at, int(m.group(3)), int(m.group(6))))
    return found


def measure(kind: str, workers: int, data: Path, files: int, *, keep: bool = False, timeout: float = 900) -> dict[str, Any]:
    """One run: a fresh database and project, `files` landed, `workers` processes until all committed."""
    import psutil

    from icefloe import Project
    from icefloe.ledger import open_ledger

    # postgresql-nosync: the same, the database's commits not waiting for their WAL flush (a diagnostic)
    load_before = os.getloadavg()[0]  # other jobs on the machine: said beside every rate
    db: PgDatabase = create_database(synchronous_commit=kind != "postgresql-nosync")
    root = temp_dir(f"workers-{kind}-{workers}-")
    ledger_uri = db.url if kind.startswith("postgresql") else "sqlite:///.icefloe/ledger.db"
    procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    try:
        _project(root, data, ledger_uri, db.catalog_url)
        started = time.time()
        landed = _land_all(root)
        if landed != files:
            raise RuntimeError(f"landed {landed} of {files} files in {data}")
        land_seconds = time.time() - started
        ledger = open_ledger(ledger_uri, root)
        try:
            me = psutil.Process()
            time.sleep(1.1)  # the landing's backend reports its transactions at most once a second
            xacts_before = transactions(db)
            me_before, sys_before = me.cpu_times(), psutil.cpu_times()
            t0 = time.time()
            procs = [_spawn(root, n) for n in range(workers)]
            pending = ledger.pending_count()
            # (time, machine CPU, workers' CPU): the share of the steady part, startup left out
            samples = [(t0, sys_before, 0.0)]
            while pending and time.time() - t0 < timeout:
                if any(p.poll() is not None for p, _, _ in procs):
                    raise RuntimeError(f"a worker exited early: {[p.poll() for p, _, _ in procs]}; logs in {root / '.bench'}")
                time.sleep(0.05)
                samples.append((time.time(), psutil.cpu_times(), _cpu([p.pid for p, _, _ in procs])))
                pending = ledger.pending_count()
            wall = time.time() - t0
            # CPU is sampled before the workers stop, while their PostgreSQL sessions still exist
            worker_cpu = _cpu([p.pid for p, _, _ in procs])
            on_cpu, runnable, alive = _sched([p.pid for p, _, _ in procs])
            pg_cpu = _cpu(backend_pids(db))
            me_after, sys_after = me.cpu_times(), psutil.cpu_times()
            states = Counter(e.state for e in ledger.events())
        finally:
            ledger.close()
        for p, _, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, _, _ in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        stats = [json.loads(s.read_text()) if s.exists() else {} for _, _, s in procs]
        time.sleep(1.1)
        xacts = transactions(db) - xacts_before  # the workers' backends flushed their counts on exit
        commits = [c for _, out, _ in procs for c in _commits(out)]
        per_worker = [sum(e for _, e, _ in _commits(out)) for _, out, _ in procs]
        with Project(root) as project:
            rows, distinct = project.sql(f"select count(*) as n, count(distinct order_id) as d from {TABLE}").to_pylist()[0].values()
        busy, total = _busy(sys_before, sys_after)
        bench_cpu = (me_after.user + me_after.system) - (me_before.user + me_before.system)
        commits.sort()
        first, last = (commits[0][0], commits[-1][0]) if commits else (t0, t0)
        steady_events = sum(e for _, e, _ in commits[1:])
        a = max((x for x in samples if x[0] <= first), default=samples[0], key=lambda x: x[0])
        b = min((x for x in samples if x[0] >= last), default=samples[-1], key=lambda x: x[0])
        steady_busy, steady_total = _busy(a[1], b[1])
        span = b[0] - a[0]
        problems = []
        if pending:
            problems.append(f"{pending} events still pending after {timeout:.0f}s")
        if states.get("committed", 0) != files or rows != files * FILE_ROWS or distinct != rows:
            problems.append(f"ledger {dict(states)}, table rows {rows} ({distinct} distinct), expected {files} events, {files * FILE_ROWS} rows")
        return {
            "ledger": kind, "workers": workers, "files": files, "landed": landed, "land_seconds": round(land_seconds, 2),
            "wall": round(wall, 2), "files_per_s": files / wall, "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "first_commit_after": round(first - t0, 2), "steady_files_per_s": steady_events / (last - first) if last > first else 0.0,
            "steady_busy_share": round(steady_busy / steady_total, 3) if steady_total else 0.0,
            "steady_worker_cores": round((b[2] - a[2]) / span, 2) if span > 0 else 0.0,
            "commits": len(commits), "events_per_commit": files / max(1, len(commits)),
            "commit_ms_median": sorted(ms for _, _, ms in commits)[len(commits) // 2] if commits else 0,
            "per_worker_events": per_worker,
            "catalog_attempts": int(sum(s.get("attempts", 0) for s in stats)),
            "catalog_conflicts": int(sum(s.get("conflicts", 0) for s in stats)),
            "catalog_commit_seconds": round(sum(s.get("commit_seconds", 0.0) for s in stats), 2),
            "main_thread": {"on_cpu": round(on_cpu / alive, 3), "waiting_for_cpu": round(runnable / alive, 3),
                            "blocked": round(max(0.0, alive - on_cpu - runnable) / alive, 3)} if alive else {},
            "pg_transactions": xacts,
            "ledger_commits": int(sum(s.get("ledger_commits", 0) for s in stats)),
            "ledger_reads": int(sum(s.get("ledger_reads", 0) for s in stats)),
            "worker_cpu": round(worker_cpu, 2), "pg_cpu": round(pg_cpu, 2), "bench_cpu": round(bench_cpu, 2),
            "busy_cpu": round(busy, 2), "all_cpu": round(total, 2), "cores": psutil.cpu_count() or 1,
            "states": dict(states), "rows": rows, "problems": problems, "root": str(root),
        }  # fmt: skip
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
        drop_database(db)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# -- the report -------------------------------------------------------------------------------------
def _limit(r: dict[str, Any]) -> str:
    """What the run was short of, from its measurements."""
    cores = r["cores"]
    busy = r["busy_cpu"] / r["all_cpu"] if r["all_cpu"] else 0.0
    share = {
        "workers": r["worker_cpu"], "PostgreSQL": r["pg_cpu"], "bench poller": r["bench_cpu"],
        "other processes": max(0.0, r["busy_cpu"] - r["worker_cpu"] - r["pg_cpu"] - r["bench_cpu"]),
    }  # fmt: skip
    split = ", ".join(f"{k} {v / r['wall']:.2f}" for k, v in share.items())
    conflicts = r["catalog_conflicts"] / max(1, r["catalog_attempts"])
    parts = [f"{busy:.0%} of {cores} cores busy (cores used: {split})"]
    if busy >= 0.85:
        parts.append("CPU-bound")
    if conflicts >= 0.1:
        parts.append(f"{conflicts:.0%} of catalog commits conflicted on the one table")
    per_worker = r["worker_cpu"] / r["wall"] / r["workers"]
    if per_worker < 0.6 and busy < 0.85 and conflicts < 0.1:
        parts.append(f"workers mostly waiting ({per_worker:.2f} core each)")
    return "; ".join(parts)


def _threads(r: dict[str, Any]) -> str:
    t = r.get("main_thread") or {}
    if not t:
        return "n/a"
    return f"{t['on_cpu']:.0%} on a CPU, {t['waiting_for_cpu']:.0%} waiting for one, {t['blocked']:.0%} blocked (database, I/O, idle)"


def ceiling(r: dict[str, Any]) -> float:
    """files/s the machine's cores would allow if the workers and PostgreSQL had them to themselves."""
    per_file = (r["worker_cpu"] + r["pg_cpu"]) / r["files"]
    return r["cores"] / per_file if per_file else float("inf")


def report(runs: list[dict[str, Any]], ledgers: list[str]) -> BenchResult:
    result = BenchResult(11, "Workers on PostgreSQL: files/s through N `icefloe run` processes (PostgreSQL catalog)")
    by = {(r["ledger"], r["workers"]): r for r in runs}
    counts = sorted({r["workers"] for r in runs})
    main_kind, peer = ledgers[0], (ledgers[1] if len(ledgers) > 1 else None)

    def cell(kind: str | None, n: int, fmt: Any) -> str:
        r = by.get((kind, n)) if kind else None
        return fmt(r) if r else ""

    for n in counts:
        a, b = by.get((main_kind, n)), by.get((peer, n)) if peer else None
        ratio = f"{a['files_per_s'] / b['files_per_s']:.2f}x" if a and b else ""
        result.row(f"files/s, {n} worker(s) ({main_kind} ledger vs {peer or '-'})", cell(main_kind, n, lambda r: f"{r['files_per_s']:.1f}"),
                   cell(peer, n, lambda r: f"{r['files_per_s']:.1f}"), ratio, ok=None if a is None else not a["problems"])  # fmt: skip
    for extra in ledgers[2:]:  # diagnostics beside the two contenders, e.g. postgresql-nosync
        for n in counts:
            result.row(f"files/s, {n} worker(s), {extra} ledger", cell(extra, n, lambda r: f"{r['files_per_s']:.1f}"))
    for n in counts[1:]:
        scale = lambda kind: (lambda r: f"{r['files_per_s'] / by[(kind, counts[0])]['files_per_s']:.2f}x")
        result.row(f"scaling {n} vs {counts[0]} worker(s)", cell(main_kind, n, scale(main_kind)), cell(peer, n, scale(peer)) if peer else "")
    for n in counts:
        result.row(f"steady files/s (first to last commit), {n}", cell(main_kind, n, lambda r: f"{r['steady_files_per_s']:.1f}"),
                   cell(peer, n, lambda r: f"{r['steady_files_per_s']:.1f}"))  # fmt: skip
    for n in counts:
        result.row(
            f"CPU ms/file workers + PostgreSQL, {n}",
            cell(main_kind, n, lambda r: f"{1000 * r['worker_cpu'] / r['files']:.1f} + {1000 * r['pg_cpu'] / r['files']:.1f}"),
            cell(peer, n, lambda r: f"{1000 * r['worker_cpu'] / r['files']:.1f} + {1000 * r['pg_cpu'] / r['files']:.1f}"),
        )
    for n in counts:
        result.row(f"PostgreSQL transactions per file, {n}", cell(main_kind, n, lambda r: f"{r['pg_transactions'] / r['files']:.1f}"),
                   cell(peer, n, lambda r: f"{r['pg_transactions'] / r['files']:.1f}"))  # fmt: skip
    for n in counts:
        result.row(f"ledger write transactions / reads per file, {n}",
                   cell(main_kind, n, lambda r: f"{r['ledger_commits'] / r['files']:.2f} / {r['ledger_reads'] / r['files']:.2f}"),
                   cell(peer, n, lambda r: f"{r['ledger_commits'] / r['files']:.2f} / {r['ledger_reads'] / r['files']:.2f}"))  # fmt: skip
    for n in counts:
        result.row(f"CPU ceiling on {runs[0]['cores']} idle cores (files/s), {n}", cell(main_kind, n, lambda r: f"{ceiling(r):.0f}"),
                   cell(peer, n, lambda r: f"{ceiling(r):.0f}"))  # fmt: skip
    for n in counts:
        result.row(
            f"catalog conflicts / attempts (commits, events each), {n}",
            cell(main_kind, n, lambda r: f"{r['catalog_conflicts']}/{r['catalog_attempts']} ({r['commits']}, {r['events_per_commit']:.1f})"),
            cell(peer, n, lambda r: f"{r['catalog_conflicts']}/{r['catalog_attempts']} ({r['commits']}, {r['events_per_commit']:.1f})"),
        )
    for r in runs:
        result.notes.append(
            f"{r['ledger']} ledger, {r['workers']} worker(s): {r['files']} files in {r['wall']:.1f}s (files/s of every run"
            f" {r['all_files_per_s']}; first commit after {r['first_commit_after']:.1f}s), events per worker {r['per_worker_events']},"
            f" median commit {r['commit_ms_median']} ms; 1-min load {r['load'][0]} -> {r['load'][1]}; first to last commit: {r['steady_busy_share']:.0%} of the machine busy,"
            f" workers on {r['steady_worker_cores']:.2f} cores; workers' main threads {_threads(r)}; whole run: {_limit(r)}" + (f"; PROBLEMS: {r['problems']}" if r["problems"] else "")
        )
    result.notes.append(
        "CPU: workers' and the bench database's PostgreSQL backends' user+system seconds (psutil) sampled when the"
        " ledger had nothing pending; 'other processes' is the rest of the machine's busy time (other jobs on it too)."
    )
    result.data["runs"] = runs
    return result


def bench(files: int, workers: list[int], ledgers: list[str], *, repeat: int = 3, keep: bool = False) -> BenchResult:
    data = dataset(f"workers-{files}x{FILE_ROWS}", _build(files))
    done: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for i in range(repeat):
        for n in workers:
            for kind in ledgers:  # interleaved: a noisy phase of the machine hits every contender alike
                log(f"workers: {kind} ledger, {n} worker(s), {files} files (run {i + 1}/{repeat})")
                r = measure(kind, n, data, files, keep=keep)
                log(f"  {r['files_per_s']:.1f} files/s ({r['wall']:.1f}s, 1-min load {r['load'][0]} -> {r['load'][1]}),"
                    f" ledger transactions/file {r['ledger_commits'] / files:.2f} + reads {r['ledger_reads'] / files:.2f}, conflicts {r['catalog_conflicts']}/{r['catalog_attempts']},"
                    f" CPU workers {r['worker_cpu']:.1f}s, PostgreSQL {r['pg_cpu']:.1f}s, busy {r['busy_cpu']:.1f}/{r['all_cpu']:.1f}s"
                    + (f"; PROBLEMS {r['problems']}" if r["problems"] else ""))  # fmt: skip
                done.setdefault((kind, n), []).append(r)
    runs = []
    for results in done.values():  # the median run of each contender, with every rate beside it
        ordered = sorted(results, key=lambda r: r["files_per_s"])
        # the lower median: with an even count of runs, the slower of the middle two
        chosen = dict(ordered[(len(ordered) - 1) // 2], all_files_per_s=[round(r["files_per_s"], 1) for r in results])
        chosen["problems"] = [p for r in results for p in r["problems"]]
        runs.append(chosen)
    return report(runs, ledgers)


def run(quick: bool) -> BenchResult:
    """`python -m bench` entry: 2,000 files through 1, 2, 4 workers (200 files, 1 and 2 with --quick)."""
    return bench(200 if quick else 2000, [1, 2] if quick else [1, 2, 4], ["postgresql", "sqlite"], repeat=1 if quick else 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, e.g. 1,2,4")
    parser.add_argument(
        "--ledgers", default="postgresql,sqlite",
        help="the measured ledger first, then its peer; postgresql-nosync is PostgreSQL with synchronous_commit off in the bench database",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (ledger, workers), the median reported")
    parser.add_argument("--keep", action="store_true", help="keep the project folders under .bench/tmp")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the worker process itself
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        _worker_main(args.worker, args.stats)
        return 0
    counts = [int(n) for n in args.workers.split(",")]
    result = bench(args.files, counts, args.ledgers.split(","), repeat=args.repeat, keep=args.keep)
    print(f"\n{result.number}. {result.title}")
    width = max(len(r["measure"]) for r in result.rows)
    print(f"  {'measure':<{width}}  {'icefloe':>16}  {'peer':>16}  ratio")
    for row in result.rows:
        print(f"  {row['measure']:<{width}}  {row['icefloe']:>16}  {row['peer']:>16}  {row['ratio']} {row['result']}")
    for note in result.notes:
        print(f"  - {note}")
    (ROOT / ".bench").mkdir(exist_ok=True)
    (ROOT / ".bench" / "workers.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    return 0 if all(row["result"] != "FAIL" for row in result.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared pieces: paths, deterministic data, project folders, child processes, result rows."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
DATA_DIR = BENCH_DIR / "data"
TMP_DIR = BENCH_DIR / "tmp"
PYTHON = sys.executable
SEED = 20261101

# the one data shape every benchmark uses: 6 columns, ~55 bytes a row
SCHEMA = {
    "order_id": "long",
    "ts": "timestamp",
    "customer": "string",
    "amount": "decimal(12,2)",
    "qty": "int",
    "status": "string",
}
DUCKDB_TYPES = {
    "order_id": "BIGINT",
    "ts": "TIMESTAMP",
    "customer": "VARCHAR",
    "amount": "DECIMAL(12,2)",
    "qty": "INTEGER",
    "status": "VARCHAR",
}
HEADER = ",".join(SCHEMA) + "\n"
STATUSES = ("new", "paid", "shipped", "returned")
CHECKS = [{"not_null": ["order_id", "ts"]}]

_STARTED = time.time()


def log(message: str) -> None:
    """A progress line, with the seconds since the bench started."""
    print(f"[{time.time() - _STARTED:7.1f}s] {message}", flush=True)


def rss_mb() -> float | None:
    """This process's resident set now (Linux /proc), e.g. after imports and before the timed work."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def git_revision() -> str:
    """The commit the bench ran against, with `+dirty` when the work tree had changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def arrow_types() -> dict[str, Any]:
    """The same schema as pyarrow types, for the raw pyarrow.csv readers of the peers."""
    import pyarrow as pa

    return {
        "order_id": pa.int64(),
        "ts": pa.timestamp("us"),
        "customer": pa.string(),
        "amount": pa.decimal128(12, 2),
        "qty": pa.int32(),
        "status": pa.string(),
    }


# -- data -------------------------------------------------------------------------------------------


def orders_csv_text(first_id: int, rows: int, rng: random.Random) -> str:
    lines = [HEADER]
    for order_id in range(first_id, first_id + rows):
        second = order_id * 7 % (86400 * 30)
        day, rest = divmod(second, 86400)
        hour, rest = divmod(rest, 3600)
        minute, sec = divmod(rest, 60)
        cents = rng.randrange(100, 5_000_000)
        lines.append(
            f"{order_id},2026-11-{day + 1:02d} {hour:02d}:{minute:02d}:{sec:02d},"
            f"cust{rng.randrange(100_000):05d},{cents // 100}.{cents % 100:02d},"
            f"{rng.randrange(1, 20)},{STATUSES[rng.randrange(4)]}\n"
        )
    return "".join(lines)


def write_orders_csv(path: Path, first_id: int, rows: int, rng: random.Random, chunk: int = 200_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for start in range(first_id, first_id + rows, chunk):
            n = min(chunk, first_id + rows - start)
            fh.write(orders_csv_text(start, n, rng)[len(HEADER) :])
    os.replace(partial, path)


def dataset(name: str, build: Callable[[Path], None]) -> Path:
    """A cached, deterministic data folder under .bench/data (rebuilt if incomplete)."""
    folder = DATA_DIR / name
    marker = folder / ".complete"
    if marker.exists():
        log(f"data: reusing {folder.relative_to(ROOT)}")
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.time()
    build(folder)
    marker.write_text("ok\n")
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    log(f"data: generated {folder.relative_to(ROOT)} ({size / 1e6:.0f} MB) in {time.time() - started:.1f}s")
    return folder


def warm(paths: list[Path]) -> None:
    """Read files once so every contender starts with them in the page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass


def temp_dir(prefix: str) -> Path:
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=TMP_DIR))


def write_project(
    root: Path,
    *,
    source_path: Path | str,
    table: str,
    settle: str | None = None,
    batch: dict[str, Any] | None = None,
    match: str = "**/*.csv",
    fmt: str = "csv",
) -> Path:
    """An icefloe project: one folder source, one typed CSV (or `fmt`) append pipeline with a not_null check."""
    source: dict[str, Any] = {"type": "folder", "path": str(source_path)}
    if settle is not None:
        source["settle"] = settle
    pipeline: dict[str, Any] = {
        "read": {"format": fmt, "schema": dict(SCHEMA)},
        "checks": CHECKS,
        "write": {"table": table, "mode": "append"},
    }
    if batch:
        pipeline["batch"] = batch
    config = {
        "catalog": "sqlite:///catalog.db",
        "warehouse": "warehouse/",
        "sources": {"landing": source},
        "routes": [{"source": "landing", "match": match, "pipeline": "orders"}],
        "pipelines": {"orders": pipeline},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


# -- child processes ----------------------------------------------------------------------------


def timed_run_once(root: Path, table: str) -> dict[str, Any]:
    """`Project(root).run(once=True)`, timed, then the row count, event states and snapshot count."""
    from collections import Counter

    from icefloe.project import Project

    start_rss = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    with Project(root) as project:
        project.run(once=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with Project(root) as project:
        rows = project.sql(f"select count(*) from {table}").column(0)[0].as_py()
        states = Counter(e.state for e in project.ledger.events())
        snapshots = len(project.catalog.load_table(table).metadata.snapshots)
    return {
        "start_rss_mb": start_rss, "seconds": seconds, "cpu_seconds": cpu, "rows": rows, "states": dict(states),
        "snapshots": snapshots,
    }  # fmt: skip


def run_child(target: str, args: dict[str, Any], *, label: str, timeout: float = 3600) -> dict[str, Any]:
    """Run `module:function(args)` in a fresh interpreter (bench/child.py); its result dict back.

    A fresh process per contender keeps imports, caches and memory apart, and gives an honest
    peak RSS (`ru_maxrss` of that process alone).
    """
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    errlog = TMP_DIR / f"{label.replace(' ', '_').replace('/', '_')}.stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with open(errlog, "w") as err:
        proc = subprocess.run(
            [PYTHON, "-m", "bench.child", target, json.dumps(args)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout,
        )  # fmt: skip
    marker = "BENCH-RESULT "
    found = [line[len(marker) :] for line in proc.stdout.splitlines() if line.startswith(marker)]
    if proc.returncode != 0 or not found:
        tail = errlog.read_text()[-3000:]
        raise RuntimeError(f"{label} failed (exit {proc.returncode}); stderr tail:\n{tail}")
    result: dict[str, Any] = json.loads(found[-1])
    return result


def interleaved(
    contenders: dict[str, tuple[str, dict[str, Any]]], *, repeat: int, before: Callable[[], Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Run each contender `repeat` times, round-robin (A B C A B C ...) so that slow phases of a
    noisy machine hit all of them alike; per contender, the run with the median time plus all times."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for i in range(repeat):
        for name, (target, args) in contenders.items():
            if before is not None:
                before()
            result = run_child(target, dict(args, run=i), label=name)
            log(f"  {name}: run {i + 1}/{repeat}: {result['seconds']:.2f}s, peak RSS {result['peak_rss_mb']:.0f} MB")
            runs[name].append(result)
    chosen = {}
    for name, results in runs.items():
        ordered = sorted(results, key=lambda r: r["seconds"])
        chosen[name] = dict(ordered[len(ordered) // 2], all_seconds=[round(r["seconds"], 3) for r in results])
    return chosen


# -- results ------------------------------------------------------------------------------------

COLUMNS = ("measure", "icefloe", "peer", "ratio", "target", "result")


@dataclass
class BenchResult:
    number: int
    title: str
    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def row(self, measure: str, icefloe: str, peer: str = "", ratio: str = "", target: str = "", ok: bool | None = None) -> None:
        result = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append(dict(zip(COLUMNS, (measure, icefloe, peer, ratio, target, result), strict=True)))

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "title": self.title, "rows": self.rows, "notes": self.notes, "data": self.data}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100), the usual definition for latency reports."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def secs(value: float) -> str:
    return f"{value:.2f} s"


def rate(rows: int, seconds: float) -> str:
    per = rows / seconds if seconds > 0 else float("inf")
    return f"{per / 1e6:.2f} M rows/s" if per >= 1e6 else f"{per / 1e3:.0f} k rows/s"


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MB"


def peak(result: dict[str, Any]) -> str:
    """Peak RSS of a contender's process, and its RSS after imports (before the timed work)."""
    start = result.get("start_rss_mb")
    return mb(result.get("peak_rss_mb")) + (f" (start {start:.0f})" if start is not None else "")


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a worker started by a benchmark and wait for its clean exit; kill it after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

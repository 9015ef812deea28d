"""Where bench 8's slow files spend their time: per-phase timings of each one-file ingest.

A debugging aid for `bench.flat`, not a benchmark: it wraps the engine's phases (landing,
ledger writes, read/parse, Parquet write, catalog load, commit, the commit gate, ledger update),
every SQLite COMMIT (ledger and catalog, which is where WAL checkpoints and fsyncs show), and the
cyclic GC's pauses, then prints the phases of the slowest files of the tail next to the median
file's. `python -m bench.flat_phases --files 1200` (Project.ingest) or `--run` (a running
`icefloe run` watching the folder, the wrappers installed in that process).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, SEED, dataset, log, percentile, stop_process, temp_dir, write_project
from bench.flat import ROWS, TABLE, _build, _files

_acc: dict[str, float] = defaultdict(float)
_main = threading.get_ident()
_records: list[dict[str, Any]] = []
_gc_started: list[float] = [0.0]


def _add(name: str, seconds: float) -> None:
    thread = "" if threading.get_ident() == _main else "bg:"
    _acc[thread + name] += seconds


def _timed(owner: Any, attr: str, name: str) -> None:
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)

    setattr(owner, attr, wrapper)


class _TimedConnection(sqlite3.Connection):
    """Every COMMIT timed, named by the database file (ledger.db or catalog.db)."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._label = Path(str(database)).stem

    def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
        if sql.startswith("COMMIT"):
            started = time.perf_counter()
            try:
                return super().execute(sql, *args)
            finally:
                _sql(self._label, time.perf_counter() - started)
        return super().execute(sql, *args)

    def commit(self) -> None:
        started = time.perf_counter()
        try:
            super().commit()
        finally:
            _sql(self._label, time.perf_counter() - started)


def _sql(label: str, seconds: float) -> None:
    _add(f"sqlcommit:{label}", seconds)
    key = ("" if threading.get_ident() == _main else "bg:") + f"sqlcommit_max:{label}"
    _acc[key] = max(_acc[key], seconds)


def _gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _gc_started[0]
    _acc[f"gc{info['generation']}"] += took
    _acc[f"gc{info['generation']}_n"] += 1


def install() -> None:
    """Wrap the phases (call before the engine is built)."""
    global _main
    _main = threading.get_ident()
    original = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("factory", _TimedConnection)
        return original(database, *args, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[attr-defined]
    gc.callbacks.append(_gc)

    import icefloe.lake.writer as writer
    from icefloe.engine import committing, landing, maintenance, worker
    from icefloe.lake.compat import LeanSqlCatalog
    from icefloe.ledger.sql import SqlLedger
    from icefloe.ledger.sql_side import SqlBase
    from icefloe.ledger.sql_views import SqlReads
    from icefloe.pipelines.runner import PipelineRunner
    from icefloe.sources.folder import FolderSource

    _timed(FolderSource, "put", "put")
    _timed(landing.Lander, "land_object", "land")
    _timed(landing.Lander, "_land_candidates", "land_candidates")
    _timed(worker.Engine, "_housekeep", "housekeep")
    _timed(worker.Engine, "_skip_already_committed", "skip_committed")
    _timed(PipelineRunner, "run", "read")
    _timed(writer, "dataframe_to_data_files", "parquet")
    _timed(writer.TableWriter, "load", "catalog_load")
    _timed(writer.TableWriter, "_commit_once", "commit_once")
    _timed(writer, "committed_event_ids", "history")
    _timed(LeanSqlCatalog, "commit_table", "catalog_commit")
    _timed(LeanSqlCatalog, "load_table", "catalog_load_table")
    _timed(committing.Committer, "_commit", "commit_total")
    _timed(committing.Committer, "_counted", "counted")
    _timed(committing.Committer, "_maintain", "submit")
    for name in ("land", "lease", "renew", "mark_committed", "set_object_stamp", "pending_count", "object_events", "get", "release_dead_owners", "heartbeat"):
        for cls in (SqlLedger, SqlReads, SqlBase):
            if name in cls.__dict__:
                _timed(cls, name, f"ledger.{name}")
    for name in ("record_step", "start_job", "finish_job", "jobs"):
        _timed(SqlBase, name, f"ledger.{name}")

    made = maintenance.Maintenance.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.gate = _TimedLock(self.gate)
        if self.process is not None:
            self.process.gate = self.gate

    maintenance.Maintenance.__init__ = init  # type: ignore[method-assign]
    mark = SqlLedger.mark_committed

    def mark_committed(self: Any, ids: list[str], **kwargs: Any) -> Any:
        try:
            return mark(self, ids, **kwargs)
        finally:
            if threading.get_ident() == _main:
                _records.append({"ids": list(ids), "at": time.time(), **dict(_acc)})
                _acc.clear()

    SqlLedger.mark_committed = mark_committed  # type: ignore[method-assign]


class _TimedLock:
    """The commit gate, its waits timed on the committer's thread."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        started = time.perf_counter()
        got = self.lock.acquire(*args, **kwargs)
        _add("gate_wait", time.perf_counter() - started)
        return bool(got)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> _TimedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the two paths -------------------------------------------------------------------------------


def ingest(root: Path, data: Path, count: int, freeze: bool = False) -> list[dict[str, Any]]:
    install()
    from icefloe.project import Project

    files = _files(data, count)
    out = []
    with Project(root) as project:
        project.ingest([files[0]])
        log(f"gc after warm-up: {len(gc.get_objects())} tracked objects, frozen {gc.get_freeze_count()}")
        if freeze:
            gc.freeze()
        _records.clear()
        _acc.clear()
        for path in files[1:]:
            started = time.perf_counter()
            project.ingest([path])
            took = time.perf_counter() - started
            phases = _records[-1] if _records else {}
            for k, v in _acc.items():  # after mark_committed (submit, ...)
                phases[k] = max(phases.get(k, 0.0), v) if "max" in k else phases.get(k, 0.0) + v
            _acc.clear()
            _records.clear()
            out.append({"file": path.name, "ms": took * 1000, **phases})
            if len(out) % 200 == 0:
                log(f"  {len(out)}/{count}")
        log(f"gc at the end: {len(gc.get_objects())} tracked objects, frozen {gc.get_freeze_count()}, stats {gc.get_stats()}")
    return out


def serve(root: str, out: str) -> None:
    """`icefloe run -p root` in this process, its per-commit phases written to `out` at exit."""
    install()

    def dump() -> None:
        Path(out).write_text(json.dumps(_records))

    atexit.register(dump)
    from icefloe.cli import main

    main(["run", "-p", root])


def run(root: Path, data: Path, count: int) -> list[dict[str, Any]]:
    from bench.latency import _Ledger, _wait_committed

    landing = root / "landing"
    files = _files(data, count)
    phases_file = root / "phases.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = f"from bench.flat_phases import serve; serve({str(root)!r}, {str(phases_file)!r})"
    with open(root / "worker.log", "wb") as log_out:
        worker = subprocess.Popen([PYTHON, "-c", code], cwd=ROOT, env=env, stdout=log_out, stderr=subprocess.STDOUT)
    ledger = None
    times: dict[str, float] = {}
    try:
        ledger_path = root / ".icefloe" / "ledger.db"
        while ledger is None or not ledger.ready():
            if ledger is None and ledger_path.exists():
                ledger = _Ledger(ledger_path)
            elif worker.poll() is not None:
                raise RuntimeError((root / "worker.log").read_text()[-3000:])
            time.sleep(0.01)
        for n, path in enumerate(files):
            partial = landing / (path.name + ".part")
            partial.write_bytes(path.read_bytes())
            t0 = time.time()
            os.replace(partial, landing / path.name)
            _, committed_at, _ = _wait_committed(ledger, path.name, worker, timeout=120 if n == 0 else 60)
            if n:
                times[path.name] = (committed_at - t0) * 1000
            if n % 200 == 0:
                log(f"  {n}/{count}")
    finally:
        if ledger is not None:
            ledger.close()
        stop_process(worker, 60)
    db = sqlite3.connect(root / ".icefloe" / "ledger.db")
    key_of = dict(db.execute("SELECT id, key FROM events").fetchall())
    db.close()
    out = []
    for record in json.loads(phases_file.read_text()):
        keys = [key_of[i] for i in record.pop("ids") if i in key_of]
        if len(keys) == 1 and keys[0] in times:
            out.append({"file": keys[0], "ms": times[keys[0]], **record})
    return out


def _overlap(root: Path, records: list[dict[str, Any]]) -> None:
    """Mark each record whose commit a maintenance run (ledger job) overlapped (by its end time)."""
    db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True)
    jobs = db.execute("SELECT started_at, ended_at FROM jobs WHERE kind='maintain' AND ended_at IS NOT NULL").fetchall()
    db.close()
    for r in records:
        end = r.get("at", 0.0)
        start = end - r["ms"] / 1000
        r["maint"] = any(a < end and b > start for a, b in jobs)


def report(records: list[dict[str, Any]], tail: int = 1000) -> None:
    last = records[-tail:]
    ms = [r["ms"] for r in last]
    median, p99 = statistics.median(ms), percentile(ms, 99)
    log(f"files {len(records)}, last {len(last)}: median {median:.1f} ms, p99 {p99:.1f} ms = {p99 / median:.2f}x")
    keys = sorted({k for r in last for k in r if k not in ("file", "ms", "at", "maint", "ids")})
    slow = sorted(last, key=lambda r: r["ms"])[-max(1, len(last) // 50) :]  # the slowest 2%
    mid = sorted(last, key=lambda r: r["ms"])[len(last) // 4 : 3 * len(last) // 4]
    print(f"{'phase':32} {'median file (mean of mid 50%)':>30} {'slowest 2% (mean)':>18}")
    for k in keys:
        a = statistics.fmean(r.get(k, 0.0) for r in mid)
        b = statistics.fmean(r.get(k, 0.0) for r in slow)
        scale = 1 if k.endswith("_n") else 1000
        if max(a, b) * scale >= 0.05:
            print(f"{k:32} {a * scale:30.2f} {b * scale:18.2f}")
    print(f"maintenance overlapped: {sum(r.get('maint', False) for r in mid)} of {len(mid)} mid, {sum(r.get('maint', False) for r in slow)} of {len(slow)} slow")
    print("slowest 10:")
    for r in sorted(last, key=lambda r: r["ms"])[-10:]:
        top = sorted(((v, k) for k, v in r.items() if k not in ("file", "ms", "at", "maint", "ids") and not k.endswith("_n") and "max" not in k), reverse=True)[:6]
        gcs = {k: r[k] for k in r if k.startswith("gc") and k.endswith("_n")}
        print(f"  {r['file']} {r['ms']:.1f} ms maint={r.get('maint')} gc={gcs} " + ", ".join(f"{k}={v * 1000:.1f}" for v, k in top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flat_phases", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1200)
    parser.add_argument("--run", action="store_true", help="a running `icefloe run` instead of Project.ingest")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the warm-up file (Project.ingest)")
    parser.add_argument("--save", type=Path, default=None, help="write the per-file records here (JSON)")
    args = parser.parse_args(argv)
    data = dataset(f"flat-{args.files}x{ROWS}-s{SEED}", _build(args.files))
    root = write_project(temp_dir("flat-phases-"), source_path="landing", table=TABLE)
    (root / "landing").mkdir(exist_ok=True)
    log(f"load {open('/proc/loadavg').read().strip()}")
    records = run(root, data, args.files) if args.run else ingest(root, data, args.files, args.freeze)
    log(f"load {open('/proc/loadavg').read().strip()}")
    _overlap(root, records)
    if args.save:
        args.save.write_text(json.dumps(records))
    report(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())

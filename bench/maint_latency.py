"""Benchmark 8: commit latency with maintenance on vs off, through a running worker (`icefloe run`).

Maintenance runs beside the committer (its own thread and catalog connection), so a compaction or
an expiry must not show in the land -> committed latency of the files that land meanwhile. Two
fresh projects in the same bench run, identical but for `maintenance`: the default policy (a run
every 50 commits: compact, rewrite manifests, expire to 20 snapshots) vs `enabled: false`. Files
land one at a time (written as NAME.part, renamed into place), each after the previous one is
committed; latency = the ledger's committed_at - its landed_at. The phases alternate in blocks
(on, off, on, off, ...) so a slow spell of the machine hits both alike; a block ends once its
worker's maintenance run (if any) has finished, and is 70 files long so that runs (every 50
commits) fall at different places in the blocks.

Then `icefloe run --once` over a folder of N files, maintenance on vs off, timed end to end
(the run waits for the maintenance it started before it exits).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    PYTHON,
    ROOT,
    SEED,
    BenchResult,
    log,
    orders_csv_text,
    percentile,
    stop_process,
    temp_dir,
    write_project,
)
from bench.latency import _Ledger, _wait_committed

TARGET_RATIO = 1.5
ROWS_PER_FILE = 100
SETTLE = "50ms"
MODES = {"on": {}, "off": {"enabled": False}}


def _project(prefix: str, maintenance: dict[str, Any]) -> Path:
    root = temp_dir(prefix)
    write_project(root, source_path="landing", table="bench.maint", settle=SETTLE)
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    if maintenance:
        config["maintenance"] = maintenance
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "landing").mkdir(exist_ok=True)
    return root


class _Worker:
    """`python -m icefloe run -p ROOT` in the background, and a read-only view of its ledger."""

    def __init__(self, root: Path) -> None:
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
        self.log_path = root / "worker.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([PYTHON, "-m", "icefloe", "run", "-p", str(root)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        path = root / ".icefloe" / "ledger.db"
        deadline = time.time() + 60
        while not path.exists():
            self._alive(deadline)
        self.ledger = _Ledger(path)
        while not self.ledger.ready():
            self._alive(deadline)

    def _alive(self, deadline: float) -> None:
        if self.proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the worker did not start; log:\n{self.log_path.read_text()[-3000:]}")
        time.sleep(0.01)

    def land(self, key: str, text: str, timeout: float = 30) -> tuple[float, float, float]:
        """Land one file and wait for its commit; (landed_at, committed_at) from the ledger and the
        wall clock just before the rename (a worker busy in its loop lands the file late)."""
        partial = self.root / "landing" / (key + ".part")
        partial.write_text(text)
        renamed = time.time()
        os.replace(partial, self.root / "landing" / key)
        landed_at, committed_at, _ = _wait_committed(self.ledger, key, self.proc, timeout)
        return landed_at, committed_at, renamed

    def jobs(self) -> list[dict[str, Any]]:
        rows = self.ledger.db.execute("SELECT state, started_at, ended_at, detail FROM jobs WHERE kind='maintain'").fetchall()
        return [{"state": s, "seconds": (e or b) - b, "started_at": b, "ended_at": e or b, **json.loads(d)} for s, b, e, d in rows]

    def settle_maintenance(self, timeout: float = 300) -> None:
        """Wait until no maintenance run of this worker is in progress."""
        deadline = time.time() + timeout
        while self.ledger.db.execute("SELECT count(*) FROM jobs WHERE state='running'").fetchone()[0]:
            if time.time() > deadline:
                raise RuntimeError("a maintenance run did not finish")
            time.sleep(0.05)

    def stop(self) -> int:
        self.ledger.close()
        stop_process(self.proc, 60)
        return self.proc.returncode


def _rows(root: Path) -> int:
    from icefloe.project import Project

    with Project(root) as project:
        return int(project.sql("select count(*) from bench.maint").column(0)[0].as_py())


def _streams(files: int, block: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(SEED + 8)
    texts = [orders_csv_text(1 + n * ROWS_PER_FILE, ROWS_PER_FILE, rng) for n in range(files)]
    workers = {mode: _Worker(_project(f"maintlat-{mode}-", settings)) for mode, settings in MODES.items()}
    samples: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    try:
        for mode, worker in workers.items():
            worker.land("warmup.csv", orders_csv_text(10**8, ROWS_PER_FILE, rng), timeout=120)  # creates the table
        for start in range(0, files, block):
            for mode, worker in workers.items():
                for n in range(start, min(files, start + block)):
                    samples[mode].append(worker.land(f"orders-{n:05d}.csv", texts[n]))
                # a run still going would slow the other worker's block down, not this one's
                worker.settle_maintenance()
            p99 = {mode: percentile(_ms(samples[mode]), 99) for mode in MODES}
            log(f"  {min(files, start + block)}/{files} files each: p99 on {p99['on']:.0f} ms, off {p99['off']:.0f} ms")
        jobs = {mode: worker.jobs() for mode, worker in workers.items()}
    finally:
        codes = {mode: worker.stop() for mode, worker in workers.items()}
    out = {}
    for mode, worker in workers.items():
        rows = _rows(worker.root)
        assert rows == (files + 1) * ROWS_PER_FILE, f"{mode}: {rows} rows, expected {(files + 1) * ROWS_PER_FILE}"
        out[mode] = {"samples": samples[mode], "jobs": jobs[mode], "exit": codes[mode], "rows": rows}
    return out


def _ms(samples: list[tuple[float, float, float]], *, from_rename: bool = False) -> list[float]:
    return [(committed - (renamed if from_rename else landed)) * 1000 for landed, committed, renamed in samples]


def _run_once(files: int, mode: str) -> dict[str, Any]:
    root = _project(f"maintonce-{mode}-", MODES[mode])
    rng = random.Random(SEED + 9)
    for n in range(files):
        (root / "landing" / f"orders-{n:05d}.csv").write_text(orders_csv_text(1 + n * ROWS_PER_FILE, ROWS_PER_FILE, rng))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    started = time.perf_counter()
    subprocess.run([PYTHON, "-m", "icefloe", "run", "--once", "-p", str(root)], cwd=ROOT, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True)
    runs = db.execute("SELECT count(*) FROM jobs WHERE kind='maintain' AND state='succeeded'").fetchone()[0]
    db.close()
    assert _rows(root) == files * ROWS_PER_FILE
    return {"seconds": seconds, "maintenance_runs": runs}


def run(quick: bool) -> BenchResult:
    files, block, once_files = (120, 35, 120) if quick else (700, 70, 2000)
    result = BenchResult(10, f"commit latency with maintenance on vs off, {files} files x {ROWS_PER_FILE} rows each, one at a time")
    log(f"[10] {result.title}")
    streams = _streams(files, block)
    on, off = _ms(streams["on"]["samples"]), _ms(streams["off"]["samples"])
    p99_on, p99_off = percentile(on, 99), percentile(off, 99)
    ratio = p99_on / p99_off
    result.row("p99 land -> committed", f"{p99_on:.0f} ms", f"{p99_off:.0f} ms (off)", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x", ok=ratio <= TARGET_RATIO)
    # without expiry every commit copies a longer history, so "off" slows down as the run goes on:
    # over the first files both tables are still small and only the cost of running beside shows
    early = max(block, files // 5)
    a, b = percentile(on[:early], 99), percentile(off[:early], 99)
    result.row(f"p99 over the first {early} files", f"{a:.0f} ms", f"{b:.0f} ms (off)", f"{a / b:.2f}x")
    a, b = (percentile(_ms(streams[mode]["samples"], from_rename=True), 99) for mode in ("on", "off"))
    result.row("p99 rename -> committed", f"{a:.0f} ms", f"{b:.0f} ms (off)", f"{a / b:.2f}x")
    for q in (50, 90, 100):
        a, b = percentile(on, q), percentile(off, q)
        result.row(f"p{q} land -> committed" if q < 100 else "max land -> committed", f"{a:.0f} ms", f"{b:.0f} ms (off)", f"{a / b:.2f}x")
    jobs = streams["on"]["jobs"]
    took = sorted(j["seconds"] for j in jobs)
    result.row("maintenance runs (worker, on)", f"{len(jobs)} ({sum(j['state'] == 'succeeded' for j in jobs)} succeeded)", "0 (off)")
    if took:
        result.row("maintenance run time, median / max", f"{percentile(took, 50) * 1000:.0f} / {took[-1] * 1000:.0f} ms")
        # the files whose land -> committed interval overlaps a maintenance run, vs the others
        during = [(landed, committed, renamed) for landed, committed, renamed in streams["on"]["samples"]
                  if any(renamed < j["ended_at"] and committed > j["started_at"] for j in jobs)]  # fmt: skip
        rest = [s for s in streams["on"]["samples"] if s not in during]
        if during and rest:
            a, b = percentile(_ms(during), 99), percentile(_ms(rest), 99)
            result.row(f"p99 of the {len(during)} files committed during a run", f"{a:.0f} ms", f"{b:.0f} ms (the other {len(rest)})", f"{a / b:.2f}x")
        compacted = sum(j.get("files_compacted", 0) for j in jobs)
        result.row("files compacted / snapshots expired (on)", f"{compacted} / {sum(j.get('expired_snapshots', 0) for j in jobs)}")
    log(f"  icefloe run --once over {once_files} files, maintenance on vs off")
    once = {mode: _run_once(once_files, mode) for mode in ("off", "on")}
    a, b = once["on"]["seconds"], once["off"]["seconds"]
    result.row(f"`icefloe run --once`, {once_files} files", f"{a:.2f} s ({once['on']['maintenance_runs']} runs)", f"{b:.2f} s (off)", f"{a / b:.2f}x")
    result.notes += [
        "Two workers (`python -m icefloe run -p DIR`), one project each, identical but for `maintenance` "
        "(default policy vs `enabled: false`); files land alternately in blocks "
        f"of {block} per worker, one at a time, each after the previous is committed; latency = ledger committed_at - landed_at.",
        "Maintenance runs on the worker's maintenance thread with its own catalog connection; a commit never waits "
        "for a run, but shares the CPU (2 cores here), can lose a commit race to it (one retry), and waits for one "
        "compaction or manifest-rewrite commit when that one lost a race to it before.",
        "`run --once`: N files in the folder, one `python -m icefloe run --once` each, timed end to end (it waits for the "
        "maintenance it started); it commits up to 16 files at a time, so the default policy runs once per ~800 files.",
    ]
    result.data = {
        "files": files, "block": block,
        "p99_ms": {"on": p99_on, "off": p99_off}, "ratio": ratio,
        "samples_ms": {"on": [round(v, 2) for v in on], "off": [round(v, 2) for v in off]},
        "samples": {mode: streams[mode]["samples"] for mode in MODES},
        "jobs": jobs, "run_once": once,
    }  # fmt: skip
    return result

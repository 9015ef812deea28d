"""Kill -9 a running `icefloe run` worker at random moments and check exactly-once afterwards.

Used by tests/e2e/test_crash.py and by `python -m bench.crash`. Nothing here imports pytest.

A *trial* is one worker life: start `python -m icefloe run -p DIR`, wait for a chosen moment,
SIGKILL it. Meanwhile a background thread keeps landing small CSV files (written to `*.part`, then
`os.replace`d into the landing folder). Every file fans out to two pipelines:

* `rows`   -> `t.rows`   append mode: every `id` is unique, so each must appear exactly once;
  files of 5+ rows exceed `spill_bytes` and write their data files ahead of the commit;
* `latest` -> `t.latest` upsert on `k`: files reuse keys; the newest landed file must win.

Kill moments (chosen per trial with `random.Random(seed)`, so a failing seed replays the choices;
thread timing is of course not replayed):

* ``startup``    0-1.2 s after spawn: imports, ledger open, dead-lease take-back, reconcile scan;
* ``landing``    as soon as the new worker records a `landed` step, + 0-50 ms;
* ``processing`` once it leased events, + 0-300 ms (reading, batching, committing);
* ``commit``     once it recorded a `commit` step (Iceberg done, ledger update next), + 0-30 ms;
* ``iceberg``    the instant a table's metadata pointer moves in catalog.db (tight poll): this
  aims at the window between the Iceberg commit and the ledger update.

After each kill the harness counts *gap events* (in a table's snapshot history, not yet committed
in the ledger) -- those trials really crashed between the two commits. After the last trial the
writer stops and `python -m icefloe run -p DIR --once` must drain everything; then `verify`
checks rows, keys, ledger states and that ledger snapshot ids match the tables' histories.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "KILL_MODES",
    "CrashHarness",
    "CrashReport",
    "Expected",
    "FileStream",
    "Trial",
    "Verdict",
    "Worker",
    "csv_text",
    "iceberg_event_ids",
    "land_bytes",
    "make_crash_project",
    "run_once",
    "verify",
]

COLUMNS = "id,k,v,note"
SCHEMA = {"id": "long", "k": "long", "v": "long", "note": "string"}
TABLES = {"rows": "t.rows", "latest": "t.latest"}
KILL_MODES = {"startup": 0.10, "landing": 0.15, "processing": 0.35, "commit": 0.15, "iceberg": 0.25}


# -- project ----------------------------------------------------------------------------------------
def make_crash_project(
    root: Path, *, settle: str = "20ms", max_wait: str = "50ms", spill_bytes: int | None = None, lease: str | None = None
) -> Path:
    """A project with folder source `landing` fanned out to an append and an upsert pipeline.

    With `spill_bytes`, append events holding more than that many bytes write their data files
    ahead of the commit (the streaming path), smaller ones commit from memory.
    """
    read = {"format": "csv", "schema": dict(SCHEMA)}
    rows_batch: dict[str, Any] = {"max_wait": max_wait}
    if spill_bytes is not None:
        rows_batch["spill_bytes"] = spill_bytes
    config: dict[str, Any] = {
        "sources": {"landing": {"type": "folder", "path": "landing", "settle": settle}},
        "routes": [{"source": "landing", "match": "**/*.csv", "pipeline": list(TABLES)}],
        "pipelines": {
            "rows": {"read": read, "write": {"table": TABLES["rows"], "mode": "append"}, "batch": rows_batch},
            "latest": {
                "read": read,
                "write": {"table": TABLES["latest"], "mode": "upsert", "key": ["k"]},
                "batch": {"max_wait": max_wait},
            },
        },
    }
    if lease is not None:
        config["lease"] = lease
    root.mkdir(parents=True, exist_ok=True)
    (root / "landing").mkdir(exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def csv_text(rows: list[tuple[int, int, int, str]]) -> str:
    return "\n".join([COLUMNS, *(f"{i},{k},{v},{note}" for i, k, v, note in rows)]) + "\n"


def land_bytes(landing: Path, name: str, data: bytes) -> Path:
    """Land a file the safe way: write `<name>.part` (ignored by the source), then rename."""
    target = landing / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


# -- expected contents ------------------------------------------------------------------------------
@dataclass
class Expected:
    """What landed: every row id once in t.rows; per key k, the v of the newest file in t.latest."""

    files: list[str] = field(default_factory=list)
    rows: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (k, v)
    latest: dict[int, int] = field(default_factory=dict)  # k -> v
    rows_per_file: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, rows: list[tuple[int, int, int, str]]) -> None:
        self.files.append(name)
        self.rows_per_file[name] = len(rows)
        for i, k, v, _ in rows:
            assert i not in self.rows, f"row id {i} generated twice"
            self.rows[i] = (k, v)
            self.latest[k] = v


class FileStream(threading.Thread):
    """Lands `f000001.csv`, `f000002.csv`, ... until stopped. Names sort in landing order."""

    def __init__(
        self,
        landing: Path,
        seed: int,
        expected: Expected,
        *,
        interval: tuple[float, float] = (0.02, 0.08),
        rows: tuple[int, int] = (1, 8),
        key_space: int = 64,
    ) -> None:
        super().__init__(name="crash-file-stream", daemon=True)
        self.landing, self.expected = landing, expected
        self.rng = random.Random(seed)
        self.interval, self.rows, self.key_space = interval, rows, key_space
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.seq = 0
        self.error: BaseException | None = None

    def write_one(self) -> str:
        self.seq += 1
        seq = self.seq
        n = self.rng.randint(*self.rows)
        keys = self.rng.sample(range(self.key_space), n)
        rows = [(seq * 100 + i, k, seq, self.rng.choice(["a", "bb", "ccc", "x y"])) for i, k in enumerate(keys)]
        name = f"f{seq:06d}.csv"
        land_bytes(self.landing, name, csv_text(rows).encode())
        with self.lock:
            self.expected.add(name, rows)
        return name

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.write_one()
                self.halt.wait(self.rng.uniform(*self.interval))
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)
        if self.error is not None:
            raise RuntimeError(f"file stream failed: {self.error!r}") from self.error


# -- the worker subprocess --------------------------------------------------------------------------
def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Worker:
    """`python -m icefloe run -p ROOT` as a subprocess, its output appended to a log file."""

    def __init__(self, root: Path, log: Path, *, once: bool = False) -> None:
        self.root, self.log = root, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._out = log.open("ab")
        self._out.write(f"\n===== {'run --once' if once else 'run'} at {time.time():.3f} =====\n".encode())
        self._out.flush()
        cmd = [sys.executable, "-m", "icefloe", "run", "-p", str(root), *(["--once"] if once else [])]
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=_python_env())
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int | None:
        """SIGKILL; returns the exit code if the worker had already exited by itself."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()
        return code

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.close()


def run_once(root: Path, log: Path | None = None, timeout: float = 180.0) -> tuple[int, float]:
    """`python -m icefloe run -p ROOT --once`; returns (exit code, seconds)."""
    worker = Worker(root, log or root / ".crash" / "worker.log", once=True)
    try:
        code = worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    return code, time.time() - worker.started


# -- peeking at the ledger and the catalog without icefloe ------------------------------------------
class _Peek:
    """Read-only looks at ledger.db and catalog.db with plain sqlite3 (cheap enough to poll)."""

    def __init__(self, root: Path) -> None:
        self.ledger_path = root / ".icefloe" / "ledger.db"
        self.catalog_path = root / "catalog.db"
        self._ledger: sqlite3.Connection | None = None
        self._catalog: sqlite3.Connection | None = None

    def _q(self, which: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = self.ledger_path if which == "ledger" else self.catalog_path
        con = self._ledger if which == "ledger" else self._catalog
        if con is None:
            if not path.exists():
                return []
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            if which == "ledger":
                self._ledger = con
            else:
                self._catalog = con
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the worker has not created its schema yet
                return []
            raise

    def max_step(self) -> int:
        rows = self._q("ledger", "SELECT MAX(rowid) FROM steps")
        return int(rows[0][0] or 0) if rows else 0

    def step_since(self, rowid: int, step: str, like: str | None = None) -> bool:
        sql = "SELECT 1 FROM steps WHERE rowid > ? AND step = ?"
        params: tuple[Any, ...] = (rowid, step)
        if like is not None:
            sql += " AND detail LIKE ?"
            params += (like,)
        return bool(self._q("ledger", sql + " LIMIT 1", params))

    def first_leases(self, rowid: int) -> dict[str, float]:
        """Event id -> when it was first leased after step `rowid`."""
        rows = self._q("ledger", "SELECT event_id, MIN(started_at) FROM steps WHERE rowid > ? AND step = 'leased' GROUP BY event_id", (rowid,))
        return {i: t for i, t in rows}

    def pointers(self) -> dict[str, str]:
        rows = self._q("catalog", "SELECT table_namespace || '.' || table_name, metadata_location FROM iceberg_tables")
        return {name: loc for name, loc in rows}

    def ledger_states(self) -> dict[str, tuple[str, str | None, float | None]]:
        rows = self._q("ledger", "SELECT id, state, lease_owner, lease_expires_at FROM events")
        return {i: (s, o, e) for i, s, o, e in rows}

    def close(self) -> None:
        for con in (self._ledger, self._catalog):
            if con is not None:
                con.close()
        self._ledger = self._catalog = None


def iceberg_event_ids(metadata_location: str) -> dict[str, int]:
    """Event id -> snapshot id, straight from a table's metadata JSON (no pyiceberg needed)."""
    path = metadata_location[len("file://") :] if metadata_location.startswith("file://") else metadata_location
    if path.endswith(".gz.metadata.json"):
        import gzip

        meta = json.loads(gzip.decompress(Path(path).read_bytes()))
    else:
        meta = json.loads(Path(path).read_text())
    ids: dict[str, int] = {}
    for snapshot in meta.get("snapshots", []):
        value = (snapshot.get("summary") or {}).get("icefloe.events")
        if value:
            ids.update(dict.fromkeys(value.split(","), snapshot["snapshot-id"]))
    return ids


# -- verification -----------------------------------------------------------------------------------
@dataclass
class Verdict:
    files: int = 0
    rows: int = 0
    rows_found: int = 0
    duplicates: int = 0  # t.rows ids present more than once (extra copies counted)
    missing: int = 0  # t.rows ids never written
    unexpected: int = 0  # t.rows ids nobody landed
    key_duplicates: int = 0  # t.latest keys present more than once
    missing_keys: int = 0
    stale_keys: int = 0  # t.latest keys whose v is not the newest file's
    events: Counter[str] = field(default_factory=Counter)
    snapshot_mismatches: int = 0
    spilled_events: int = 0  # t.rows events whose rows were written ahead of the commit
    problems: list[str] = field(default_factory=list)


def verify(root: Path, expected: Expected, *, check_latest_values: bool = True) -> Verdict:
    """Query the tables and the ledger through `icefloe.Project` and compare with `expected`."""
    from icefloe import Project
    from icefloe.lake.writer import committed_event_ids

    v = Verdict(files=len(expected.files), rows=len(expected.rows))
    with Project(root) as project:
        dup = project.sql("select id, count(*) as n from t.rows group by id having count(*) > 1").to_pylist()
        v.duplicates = sum(r["n"] - 1 for r in dup)
        found = project.sql("select id, k, v from t.rows").to_pylist()
        v.rows_found = len(found)
        present = {r["id"] for r in found}
        v.missing = len(expected.rows.keys() - present)
        v.unexpected = len(present - expected.rows.keys())
        wrong = [r for r in found if r["id"] in expected.rows and (r["k"], r["v"]) != expected.rows[r["id"]]]
        latest = project.sql("select k, count(*) as n, max(v) as v from t.latest group by k").to_pylist()
        v.key_duplicates = sum(r["n"] - 1 for r in latest)
        have = {r["k"]: r["v"] for r in latest}
        v.missing_keys = len(expected.latest.keys() - have.keys())
        stale = {k: (have[k], want) for k, want in expected.latest.items() if k in have and have[k] != want}
        v.stale_keys = len(stale)

        events = project.ledger.events()
        v.events = Counter(e.state for e in events)
        history = {}
        for pipeline, table in TABLES.items():
            history[pipeline] = committed_event_ids(project.catalog.load_table(table))
        per_event = {r["_icefloe_event"]: r["n"] for r in project.sql(
            "select _icefloe_event, count(*) as n from t.rows group by _icefloe_event").to_pylist()}  # fmt: skip
        bad_snapshots, bad_counts = [], []
        for e in events:
            if e.state != "committed" or e.pipeline is None:
                continue
            if history[e.pipeline].get(e.id) != e.snapshot_id:
                bad_snapshots.append((e.id, e.pipeline, e.snapshot_id, history[e.pipeline].get(e.id)))
            if e.pipeline == "rows" and per_event.get(e.id, 0) != expected.rows_per_file.get(e.key, -1):
                bad_counts.append((e.key, per_event.get(e.id, 0), expected.rows_per_file.get(e.key)))
        v.snapshot_mismatches = len(bad_snapshots)
        con = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True)
        try:
            v.spilled_events = con.execute("SELECT COUNT(DISTINCT event_id) FROM steps WHERE step = 'spill'").fetchone()[0]
        finally:
            con.close()
        keys = {(e.key, e.pipeline) for e in events}
        unlanded = [(f, p) for f in expected.files for p in TABLES if (f, p) not in keys]

    p = v.problems
    if v.duplicates:
        p.append(f"t.rows: {v.duplicates} duplicate row(s), e.g. {dup[:5]}")
    if v.missing:
        p.append(f"t.rows: {v.missing} missing row id(s), e.g. {sorted(expected.rows.keys() - present)[:10]}")
    if v.unexpected:
        p.append(f"t.rows: {v.unexpected} unexpected row id(s)")
    if wrong:
        p.append(f"t.rows: {len(wrong)} row(s) with wrong values, e.g. {wrong[:3]}")
    if v.key_duplicates:
        p.append(f"t.latest: {v.key_duplicates} duplicate key(s): {[r for r in latest if r['n'] > 1][:5]}")
    if v.missing_keys:
        p.append(f"t.latest: {v.missing_keys} missing key(s)")
    if check_latest_values and v.stale_keys:
        p.append(f"t.latest: {v.stale_keys} key(s) not at the newest file's value (k: (have, want)): {dict(list(stale.items())[:5])}")
    if unlanded:
        p.append(f"ledger: {len(unlanded)} (file, pipeline) never became events, e.g. {unlanded[:5]}")
    not_done = {s: n for s, n in v.events.items() if s != "committed"}
    if not_done:
        p.append(f"ledger: events not committed: {not_done}")
    if bad_snapshots:
        p.append(f"ledger: {len(bad_snapshots)} snapshot id(s) differ from table history (id, pipeline, ledger, history): {bad_snapshots[:5]}")
    if bad_counts:
        p.append(f"t.rows: {len(bad_counts)} event(s) with a wrong row count (file, rows, expected): {bad_counts[:5]}")
    return v


# -- the trial loop ---------------------------------------------------------------------------------
@dataclass
class Trial:
    n: int
    mode: str
    pid: int
    reached: bool  # the awaited moment happened before the deadline
    waited: float  # seconds from spawn to the moment
    delay: float  # extra seconds before SIGKILL
    lived: float  # seconds from spawn to SIGKILL
    exited_early: int | None  # exit code if the worker died on its own (a bug)
    gap_events: int  # in Iceberg history, not committed in the ledger, right after the kill
    stale_leases: int  # running events of dead workers still holding a live lease (a bug)
    gap_ids: list[str] = field(default_factory=list)


@dataclass
class CrashReport:
    seed: int
    trials: list[Trial]
    verdict: Verdict
    final_seconds: float
    final_code: int
    elapsed: float
    root: Path
    problems: list[str]
    held_at_end: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        v = self.verdict
        modes = Counter(t.mode for t in self.trials)
        reached = Counter(t.mode for t in self.trials if t.reached)
        lived = sorted(t.lived for t in self.trials)
        lines = [
            f"seed {self.seed}: {len(self.trials)} kill trials in {self.elapsed:.1f}s (project {self.root})",
            "  kills by moment: " + ", ".join(f"{m} {modes[m]} ({reached[m]} reached)" for m in KILL_MODES),
            f"  worker lifetime at kill: min {lived[0]:.2f}s, median {lived[len(lived) // 2]:.2f}s, max {lived[-1]:.2f}s"
            if lived else "  no trials",
            f"  kills that left Iceberg ahead of the ledger: {sum(1 for t in self.trials if t.gap_events)}"
            f" ({sum(t.gap_events for t in self.trials)} events)",
            f"  final `run --once`: exit {self.final_code} in {self.final_seconds:.1f}s,"
            f" took back {self.held_at_end} lease(s) the last killed worker held",
            f"  files {v.files}, rows {v.rows} (found {v.rows_found}), duplicates {v.duplicates}, missing {v.missing},"
            f" unexpected {v.unexpected}; {v.spilled_events} events written ahead of their commit (spill)",
            f"  upsert keys: duplicates {v.key_duplicates}, missing {v.missing_keys}, stale {v.stale_keys}",
            f"  ledger: {dict(v.events)}, snapshot id mismatches {v.snapshot_mismatches}",
            "  result: " + ("OK" if self.ok else "FAILED\n    " + "\n    ".join(self.problems)),
        ]
        return "\n".join(lines)


class CrashHarness:
    def __init__(
        self,
        root: Path,
        *,
        seed: int | None = None,
        interval: tuple[float, float] = (0.02, 0.08),
        key_space: int = 64,
        spill_bytes: int | None = 150,
        marker_timeout: float = 8.0,
        log: Any = None,
    ) -> None:
        # ~half the files (5+ rows) take the write-ahead (spill) path into t.rows
        self.root = make_crash_project(Path(root), spill_bytes=spill_bytes)
        self.seed = random.randrange(2**32) if seed is None else seed
        self.rng = random.Random(self.seed)
        self.expected = Expected()
        self.stream = FileStream(self.root / "landing", self.seed ^ 0x5EED, self.expected, interval=interval, key_space=key_space)
        self.marker_timeout = marker_timeout
        self.peek = _Peek(self.root)
        self.log_path = self.root / ".crash" / "worker.log"
        self.say = log or (lambda _msg: None)
        self.dead_pids: list[int] = []

    # one worker life ----------------------------------------------------------------------------
    def _await(self, mode: str, worker: Worker, since_step: int, pointers: dict[str, str]) -> bool:
        deadline = worker.started + self.marker_timeout
        pid_like = f"%:{worker.pid}:%"
        leased = False
        while time.time() < deadline and worker.alive():
            if mode == "landing" and self.peek.step_since(since_step, "landed"):
                return True
            if mode == "processing" and self.peek.step_since(since_step, "leased", pid_like):
                return True
            if mode == "commit" and self.peek.step_since(since_step, "commit"):
                return True
            if mode == "iceberg":
                if self.peek.pointers() != pointers:
                    return True
                # near-tight loop once work is leased: the window before the ledger update is a few ms
                leased = leased or self.peek.step_since(since_step, "leased", pid_like)
                time.sleep(0.0002 if leased else 0.003)
                continue
            time.sleep(0.003)
        return False

    def _gap_events(self) -> list[str]:
        """Events in some table's history whose ledger state is not `committed`."""
        states = self.peek.ledger_states()
        return [
            event
            for location in self.peek.pointers().values()
            for event in iceberg_event_ids(location)
            if states.get(event, ("?",))[0] != "committed"
        ]

    def _stale_leases(self, current_pid: int) -> int:
        """Running events of earlier (dead) workers whose lease was not taken back."""
        stale = 0
        for state, owner, expires in self.peek.ledger_states().values():
            if state != "running" or not owner or not expires:
                continue
            host, _, rest = owner.partition(":")
            pid = int(rest.partition(":")[0])
            if host == socket.gethostname() and pid != current_pid and pid in self.dead_pids:
                stale += 1
        return stale

    def trial(self, n: int) -> Trial:
        mode = self.rng.choices(list(KILL_MODES), weights=list(KILL_MODES.values()))[0]
        since_step = self.peek.max_step()
        pointers = self.peek.pointers()
        worker = Worker(self.root, self.log_path)
        try:
            if mode == "startup":
                reached, delay = True, self.rng.uniform(0.0, 1.2)
            else:
                reached = self._await(mode, worker, since_step, pointers)
                delay = {"landing": 0.05, "processing": 0.3, "commit": 0.03, "iceberg": 0.0}[mode] * self.rng.random()
            waited = time.time() - worker.started
            if delay:
                time.sleep(delay)
            lived = time.time() - worker.started
        finally:
            early = worker.kill()  # first thing: any check before it would widen the aim
        # the dead-lease take-back runs before the first `landed` step, so check it once one exists
        started_up = self.peek.step_since(since_step, "landed") or self.peek.step_since(since_step, "leased")
        stale = self._stale_leases(worker.pid) if started_up and early is None else 0
        self.dead_pids.append(worker.pid)
        gap = self._gap_events()
        t = Trial(n, mode, worker.pid, reached, round(waited, 3), round(delay, 3), round(lived, 3), early, len(gap), stale, gap)
        self.say(
            f"trial {n:3d}: {mode:<10} {'reached' if reached else 'timeout'} at {waited:5.2f}s, killed at {lived:5.2f}s,"
            f" gap {len(gap)}, files so far {self.stream.seq}"
        )
        return t

    def run(self, trials: int) -> CrashReport:
        started = time.time()
        self.say(f"crash harness: seed {self.seed}, {trials} trials, project {self.root}")
        done: list[Trial] = []
        problems: list[str] = []
        self.stream.start()
        try:
            for n in range(1, trials + 1):
                done.append(self.trial(n))
        finally:
            self.stream.stop()
        try:
            # leases the last killed worker still held: `run --once` must take them back at once
            held = {
                i: exp
                for i, (state, _, exp) in self.peek.ledger_states().items()
                if state == "running" and exp and exp > time.time()
            }
            since_step = self.peek.max_step()
            code, seconds = run_once(self.root, self.log_path)
            first_lease = self.peek.first_leases(since_step)
        finally:
            self.peek.close()
        waited_out = sorted(i for i, expires in held.items() if first_lease.get(i, float("inf")) >= expires)
        verdict = verify(self.root, self.expected)
        problems += verdict.problems
        if code != 0:
            problems.append(f"final `icefloe run --once` exited {code} (log {self.log_path})")
        early = [t for t in done if t.exited_early is not None]
        if early:
            problems.append(f"{len(early)} worker(s) exited by themselves before the kill: {[(t.n, t.exited_early) for t in early]}")
        stale = [t for t in done if t.stale_leases]
        if stale:
            problems.append(f"dead workers' leases not taken back on restart in trials {[(t.n, t.stale_leases) for t in stale]}")
        if waited_out:
            problems.append(f"final `run --once` did not take back the killed worker's leases of {waited_out[:5]} before they expired")
        if problems:
            problems.append(f"replay with seed {self.seed}; worker output in {self.log_path}")
        return CrashReport(self.seed, done, verdict, seconds, code, time.time() - started, self.root, problems, len(held))

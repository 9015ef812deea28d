"""Kill -9 a running `icefloe run` worker at random moments and check exactly-once afterwards.

Used by tests/e2e/test_crash.py and by `python -m bench.crash`. Nothing here imports pytest.

A *trial* is one worker life: start `python -m icefloe run -p DIR`, wait for a chosen moment,
SIGKILL it. Meanwhile a background thread keeps landing small CSV files (written to `*.part`, then
`os.replace`d into the landing folder). Every file fans out to two pipelines:

* `rows`   -> `t.rows`   append mode: every `id` is unique, so each must appear exactly once;
  files of 5+ rows exceed `spill_bytes` and write their data files ahead of the commit;
* `latest` -> `t.latest` upsert on `k`: files reuse keys; the newest landed file must win.

Kill moments (chosen per trial with `random.Random(seed)`, so a failing seed replays the choices;
thread timing is of course not replayed). A run of at least one trial more than there are kinds of
moment tries every kind at least once (at trials the seed picks, none of them the first, whose
worker starts on an empty ledger); the other trials draw a moment by weight:

* ``startup``    0-1.2 s after spawn: imports, ledger open, dead-lease take-back, reconcile scan;
* ``landing``    as soon as the new worker records a `landed` step, + 0-50 ms;
* ``processing`` once it leased events, + 0-300 ms (reading, batching, committing);
* ``commit``     once it recorded a `commit` step (Iceberg done, ledger update next), + 0-30 ms;
* ``iceberg``    the instant a table's metadata pointer moves in the catalog (tight poll): this
  aims at the window between the Iceberg commit and the ledger update.
* ``drop``       (PostgreSQL, the trials given as `drops`) once the worker committed, every
  session of the database is terminated (`pg_terminate_backend`); the worker must commit again
  within `recover_timeout` on new connections, then it is killed like the others.

With `ledger` / `catalog` URIs (PostgreSQL) the project keeps its state there instead of in
`.icefloe/ledger.db` and `catalog.db`; the peeks and `verify` read either.

After each kill the harness counts *gap events* (in a table's snapshot history, not yet committed
in the ledger) -- those trials really crashed between the two commits. After the last trial the
writer stops and `python -m icefloe run -p DIR --once` must drain everything; then `verify`
checks rows, keys, ledger states and that ledger snapshot ids match the tables' histories.

The project, `Expected` and `verify` live in crash_project.py; the worker subprocess and the
sqlite peeks in crash_worker.py. Their public names are re-exported here.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.crash_project import (
    COLUMNS,
    SCHEMA,
    TABLES,
    Expected,
    FileStream,
    Verdict,
    csv_text,
    land_bytes,
    make_crash_project,
    verify,
)
from tests.e2e.crash_worker import Worker, _Peek, iceberg_event_ids, run_once
from tests.e2e.pgdb import ports_of, terminate_sessions

__all__ = [
    "COLUMNS",
    "KILL_MODES",
    "SCHEMA",
    "TABLES",
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

# maintenance: killed while a compaction / expiry run of the worker is in flight
KILL_MODES = {"startup": 0.10, "landing": 0.15, "processing": 0.35, "commit": 0.15, "iceberg": 0.25, "maintenance": 0.15}
# the longest a trial waits for its worker to start before its moment's own wait begins
STARTUP_CAP = 120.0
# with an `outage` (down, up) pair: the object store goes away and comes back before the kill
OUTAGE_WEIGHT = 0.35


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
    dropped: int = 0  # PostgreSQL sessions terminated (mode `drop`), the harness's own included
    dropped_worker: int = 0  # of those, the worker's
    recovered_after: float | None = None  # seconds from the drop to its next committed event


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
    backend: str = "sqlite"

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        v = self.verdict
        modes = Counter(t.mode for t in self.trials)
        reached = Counter(t.mode for t in self.trials if t.reached)
        drops = [t for t in self.trials if t.mode == "drop"]
        lived = sorted(t.lived for t in self.trials)
        lines = [
            f"seed {self.seed}: {len(self.trials)} kill trials in {self.elapsed:.1f}s, {self.backend} (project {self.root})",
            "  kills by moment: " + ", ".join(
                f"{m} {modes[m]} ({reached[m]} reached)"
                for m in [*KILL_MODES, *(["drop"] if drops else []), *(["outage"] if modes["outage"] else [])]
            ),
            *[
                f"  connection drop in trial {t.n}: {t.dropped} session(s) terminated ({t.dropped_worker} the worker's), worker committed again after "
                + (f"{t.recovered_after:.2f}s" if t.recovered_after is not None else "NEVER")
                for t in drops
            ],
            f"  worker lifetime at kill: min {lived[0]:.2f}s, median {lived[len(lived) // 2]:.2f}s, max {lived[-1]:.2f}s"
            if lived else "  no trials",
            f"  kills that left Iceberg ahead of the ledger: {sum(1 for t in self.trials if t.gap_events)}"
            f" ({sum(t.gap_events for t in self.trials)} events)",
            f"  final `run --once`: exit {self.final_code} in {self.final_seconds:.1f}s,"
            f" took back {self.held_at_end} lease(s) the last killed worker held",
            f"  files {v.files}, rows {v.rows} (found {v.rows_found}), duplicates {v.duplicates}, missing {v.missing},"
            f" unexpected {v.unexpected}; {v.spilled_events} events written ahead of their commit (spill);"
            f" {v.maintenance_runs} maintenance runs, {v.expired_events} events whose snapshot expired",
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
        ledger: str | None = None,
        catalog: str | None = None,
        drops: tuple[int, ...] = (),
        recover_timeout: float = 15.0,
        source: dict[str, Any] | None = None,
        s3: dict[str, Any] | None = None,
        land: Callable[[str, bytes], Any] | None = None,
        outage: tuple[Callable[[], Any], Callable[[], Any]] | None = None,
        outage_trials: tuple[int, ...] = (),
    ) -> None:
        # ~half the files (5+ rows) take the write-ahead (spill) path into t.rows
        self.root = make_crash_project(Path(root), spill_bytes=spill_bytes, ledger=ledger, catalog=catalog, source=source, s3=s3)
        # (down, up) of the object store: trials of mode `outage` take it away while a worker runs
        self.outage, self.outage_trials = outage, set(outage_trials)
        self.modes = {**KILL_MODES, **({"outage": OUTAGE_WEIGHT} if outage else {})}
        self.urls = [u for u in dict.fromkeys((ledger, catalog)) if u is not None and not u.startswith("sqlite")]
        if drops and not self.urls:
            raise ValueError("connection drops need a PostgreSQL ledger or catalog")
        self.drops, self.recover_timeout = set(drops), recover_timeout
        self.backend = "PostgreSQL ledger" if ledger and not ledger.startswith("sqlite") else "SQLite ledger"
        self.backend += ", PostgreSQL catalog" if catalog and not catalog.startswith("sqlite") else ", SQLite catalog"
        self.seed = random.randrange(2**32) if seed is None else seed
        self.rng = random.Random(self.seed)
        self.expected = Expected()
        self.stream = FileStream(
            self.root / "landing", self.seed ^ 0x5EED, self.expected, interval=interval, key_space=key_space, land=land
        )
        self.marker_timeout = marker_timeout
        self.peek = _Peek(self.root, ledger, catalog)
        self.log_path = self.root / ".crash" / "worker.log"
        self.say = log or (lambda _msg: None)
        self.dead_pids: list[int] = []

    # one worker life ----------------------------------------------------------------------------
    def _await(self, mode: str, worker: Worker, since_step: int, pointers: dict[str, str]) -> bool:
        # `marker_timeout` counts from spawn, or from when the worker is up where its start took
        # longer (a loaded machine: imports alone took 15 s at load 20, and every trial timed out
        # before its moment); never past STARTUP_CAP seconds of start-up
        deadline = worker.started + self.marker_timeout
        pid_like = f"%:{worker.pid}:%"
        leased, up, looked = False, False, 0.0
        while worker.alive():
            now = time.time()
            if not up and now - looked > 0.1:
                looked = now
                if worker.ready():
                    up, deadline = True, max(deadline, now + self.marker_timeout)
            if now >= deadline and (up or now >= worker.started + STARTUP_CAP):
                break
            if mode == "landing" and self.peek.step_since(since_step, "landed"):
                return True
            if mode == "processing" and self.peek.step_since(since_step, "leased", pid_like):
                return True
            if mode == "commit" and self.peek.step_since(since_step, "commit"):
                return True
            if mode == "maintenance" and self.peek.job_running(worker.started):
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

    def _drop(self, worker: Worker, since_step: int) -> tuple[bool, int, int, float | None]:
        """Terminate every session of the project's databases once the worker leased events; then
        wait for it to commit an event on new connections.
        (reached, sessions terminated, the worker's among them, seconds until it committed again)."""
        # after its first commit the worker holds catalog sessions too (the catalog opens lazily)
        reached = self._await("commit", worker, since_step, {})
        mark = self.peek.max_step()
        mine = ports_of(worker.pid)
        dropped_at = time.time()
        ports = [port for url in self.urls for port in terminate_sessions(url)]
        theirs = sum(1 for port in ports if port in mine)
        deadline = dropped_at + self.recover_timeout
        while time.time() < deadline and worker.alive():
            if self.peek.committed_anew(mark, dropped_at):
                return reached, len(ports), theirs, round(time.time() - dropped_at, 3)
            time.sleep(0.02)
        return reached, len(ports), theirs, None

    def _outage(self, worker: Worker, since_step: int) -> bool:
        """Once the worker leased events, the store goes away for 0.3-2 s and comes back; the
        kill follows a moment later (it may be retrying reads, or have gone on)."""
        assert self.outage is not None
        down, up = self.outage
        reached = self._await("processing", worker, since_step, {})
        down()
        try:
            time.sleep(self.rng.uniform(0.3, 2.0))
        finally:
            up()
        return reached

    def schedule(self, trials: int) -> list[str]:
        """Each trial's kill moment: the drops and outages where they were given, every other kind
        once where there are trials enough (so a short run covers them all), the rest by weight."""
        given = {n: "drop" for n in self.drops} | {n: "outage" for n in self.outage_trials if self.outage}
        free = [n for n in range(1, trials + 1) if n not in given]
        drawn = self.rng.choices(list(self.modes), weights=list(self.modes.values()), k=len(free))
        plan = {**given, **dict(zip(free, drawn, strict=True))}
        later, kinds = [n for n in free if n > 1], list(self.modes)
        if len(later) >= len(kinds):
            plan.update(zip(self.rng.sample(later, len(kinds)), self.rng.sample(kinds, len(kinds)), strict=True))
        return [plan[n] for n in range(1, trials + 1)]

    def trial(self, n: int, mode: str) -> Trial:
        since_step = self.peek.max_step()
        pointers = self.peek.pointers()
        worker = Worker(self.root, self.log_path)
        dropped, dropped_worker, recovered = 0, 0, None
        try:
            if mode == "startup":
                reached, delay = True, self.rng.uniform(0.0, 1.2)
            elif mode == "outage":
                reached, delay = self._outage(worker, since_step), 0.5 * self.rng.random()
            elif mode == "drop":
                reached, dropped, dropped_worker, recovered = self._drop(worker, since_step)
                delay = 0.0
            else:
                reached = self._await(mode, worker, since_step, pointers)
                delay = {"landing": 0.05, "processing": 0.3, "commit": 0.03, "iceberg": 0.0, "maintenance": 0.3}[mode] * self.rng.random()
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
        t = Trial(n, mode, worker.pid, reached, round(waited, 3), round(delay, 3), round(lived, 3), early, len(gap), stale, gap,
                  dropped, dropped_worker, recovered)  # fmt: skip
        extra = f", dropped {dropped} session(s) ({dropped_worker} the worker's), committed again after {recovered}s" if mode == "drop" else ""
        self.say(
            f"trial {n:3d}: {mode:<10} {'reached' if reached else 'timeout'} at {waited:5.2f}s, killed at {lived:5.2f}s,"
            f" gap {len(gap)}, files so far {self.stream.seq}{extra}"
        )
        return t

    def run(self, trials: int) -> CrashReport:
        started = time.time()
        self.say(f"crash harness: seed {self.seed}, {trials} trials, project {self.root}")
        done: list[Trial] = []
        problems: list[str] = []
        plan = self.schedule(trials)
        self.stream.start()
        try:
            for n, mode in enumerate(plan, 1):
                done.append(self.trial(n, mode))
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
            # a slow ledger (PostgreSQL commits wait on their WAL flush) can leave a backlog to drain
            try:
                code, seconds = run_once(self.root, self.log_path, timeout=900)
            except subprocess.TimeoutExpired:  # killed by run_once: what it left is in the verdict
                code, seconds = -1, 900.0
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
        unrecovered = [t.n for t in done if t.mode == "drop" and (t.recovered_after is None or not t.dropped_worker)]
        if unrecovered:
            problems.append(f"after the PostgreSQL connection drop in trial(s) {unrecovered} the worker committed nothing"
                            f" within {self.recover_timeout:.0f}s (or it had no session to terminate)")  # fmt: skip
        if problems:
            problems.append(f"replay with seed {self.seed}; worker output in {self.log_path}")
        return CrashReport(self.seed, done, verdict, seconds, code, time.time() - started, self.root, problems, len(held), self.backend)

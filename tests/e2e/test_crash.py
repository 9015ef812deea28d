"""Exactly-once under crashes: kill -9 a running worker again and again, land files twice and thrice.

Set ICEFLOE_CRASH_SEED to replay a failing seed's choices, ICEFLOE_CRASH_TRIALS for more trials
(`python -m bench.crash --trials 100` runs the same harness as a stress test). The default 10
trials try every kind of kill moment at least once (the harness's schedule); 20 used to leave
one kind untried in about one run of eight (a `startup` kill, weight 0.10: 0.9^20).
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from icefloe import Project
from icefloe.lake.writer import EVENTS_PROPERTY, Staged, committed_event_ids
from tests.e2e.crash_harness import (
    KILL_MODES,
    TABLES,
    CrashHarness,
    Expected,
    Worker,
    csv_text,
    land_bytes,
    make_crash_project,
    run_once,
    verify,
)

TRIALS = int(os.environ.get("ICEFLOE_CRASH_TRIALS", "10"))


def _seed() -> int:
    return int(os.environ.get("ICEFLOE_CRASH_SEED") or random.randrange(2**32))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _wait_committed(root: Path, events: int, timeout: float = 60.0) -> None:
    """Until the ledger holds `events` events, all committed."""
    deadline = time.time() + timeout
    path = root / ".icefloe" / "ledger.db"
    counts: list[tuple[str, int]] = []
    while time.time() < deadline:
        if path.exists():
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                counts = con.execute("SELECT state, COUNT(*) FROM events GROUP BY state").fetchall()
            except sqlite3.OperationalError:
                counts = []
            finally:
                con.close()
            if dict(counts) == {"committed": events}:
                return
        time.sleep(0.05)
    raise AssertionError(f"ledger did not reach {events} committed events in {timeout}s: {counts}")


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = _seed()
    print(f"crash trials seed {seed} (replay: ICEFLOE_CRASH_SEED={seed})")
    report = CrashHarness(tmp_path / "p", seed=seed, log=print).run(TRIALS)
    print(report.summary())
    assert report.ok, report.summary()
    assert {t.mode for t in report.trials} >= set(KILL_MODES), report.summary()  # every kind of moment tried
    assert report.verdict.files >= 50 and report.verdict.duplicates == 0 and report.verdict.missing == 0
    # compaction and snapshot expiry ran between (and under) the kills
    assert report.verdict.maintenance_runs > 0 and report.verdict.expired_events > 0, report.summary()
    # the kills must not all hit startup: most should land while events are processed or committed
    busy = [t for t in report.trials if t.reached and t.mode in ("processing", "commit", "iceberg")]
    assert len(busy) >= 3, report.summary()


def _batch(expected: Expected, staging: Path, n: int, rng: random.Random) -> Path:
    # keys are unique per row here, so the upsert table's contents do not depend on landing order
    rows = [(n * 100 + i, n * 100 + i, n, "dup") for i in range(rng.randint(1, 6))]
    path = staging / f"d{n:03d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(rows))
    expected.add(path.name, rows)
    return path


def test_every_file_landed_three_times_in_random_order_is_written_once(tmp_path: Path) -> None:
    """Re-deliveries through the folder (worker running, killed once midway) and through
    `Project.ingest` in this process, concurrently with the worker process."""
    seed = _seed()
    rng = random.Random(seed)
    root = make_crash_project(tmp_path / "p")
    expected = Expected()
    files = [_batch(expected, tmp_path / "staging", n, rng) for n in range(1, 31)]
    deliveries = files * 3
    rng.shuffle(deliveries)
    log = root / ".crash" / "worker.log"
    worker = Worker(root, log)
    ingested = []
    try:
        with Project(root) as project:
            for i, path in enumerate(deliveries):
                if i == len(deliveries) // 2:
                    worker.kill()  # the replacement takes the dead worker's leases back
                    worker = Worker(root, log)
                if rng.random() < 0.2:
                    ingested += project.ingest([path])
                else:
                    land_bytes(root / "landing", path.name, path.read_bytes())
                time.sleep(rng.uniform(0, 0.03))
            _wait_committed(root, 2 * len(files))
    finally:
        worker.stop()
        code = worker.wait(30)
    assert code == 0, log.read_text()
    assert ingested and all(e.state == "committed" for e in ingested), f"seed {seed}"
    verdict = verify(root, expected)
    assert not verdict.problems, f"seed {seed}: {verdict.problems}"
    assert verdict.rows_found == len(expected.rows)


def test_project_ingest_of_repeated_files_is_idempotent(tmp_path: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)
    root = make_crash_project(tmp_path / "p")
    expected = Expected()
    files = [_batch(expected, tmp_path / "staging", n, rng) for n in range(1, 11)]
    with Project(root) as project:
        first = project.ingest(rng.sample(files * 3, 30))
        again = project.ingest(rng.sample(files, 10))
        assert sorted(e.id for e in first) == sorted(e.id for e in again)
        assert len(first) == 2 * len(files) and all(e.state == "committed" for e in first)
    verdict = verify(root, expected)
    assert not verdict.problems, f"seed {seed}: {verdict.problems}"


def test_crash_between_iceberg_commit_and_ledger_update_is_not_written_again(tmp_path: Path) -> None:
    """Simulated deterministically: commit through the writer, leave the ledger event `running`.

    a.csv: both events committed to Iceberg, leased by a dead local worker (lease still valid)
    b.csv: t.rows event committed, t.latest event not (crash between the two tables' commits),
           leased by a worker on another host whose lease has expired
    c.csv: landed, never leased
    """
    root = make_crash_project(tmp_path / "p")
    landing = root / "landing"
    expected = Expected()
    contents = {
        "a.csv": [(1, 1, 1, "a"), (2, 2, 1, "a"), (3, 3, 1, "a"), (4, 4, 1, "a"), (5, 5, 1, "a")],
        "b.csv": [(11, 1, 2, "b"), (12, 2, 2, "b"), (13, 3, 2, "b")],
        "c.csv": [(21, 3, 3, "c"), (22, 6, 3, "c")],
    }
    for name, rows in contents.items():
        land_bytes(landing, name, csv_text(rows).encode())
        expected.add(name, rows)
    dead_owner = f"{socket.gethostname()}:{_dead_pid()}:dead00"
    remote_owner = "some-other-host:4242:feed00"
    committed: dict[str, int] = {}
    with Project(root) as project:
        engine, ledger, source = project.engine(), project.ledger, project.sources["landing"]

        def iceberg_only(events: list, pipeline: str) -> None:
            (ev,) = [e for e in events if e.pipeline == pipeline]
            out = engine.runners[pipeline].run(ev, source.local_path(ev.key))
            snapshot, done = engine.writer(TABLES[pipeline]).commit([Staged(ev.id, out.source_ref, out.data, ev.landed_at)])
            assert done == [ev.id] and snapshot is not None
            committed[ev.id] = snapshot

        engine.land(source, "a.csv")
        a_events = ledger.lease(dead_owner, limit=10, ttl=3600)
        engine.land(source, "b.csv")
        b_events = ledger.lease(remote_owner, limit=10, ttl=0.2)
        engine.land(source, "c.csv")
        assert len(a_events) == len(b_events) == 2
        iceberg_only(a_events, "rows")
        iceberg_only(a_events, "latest")
        iceberg_only(b_events, "rows")
        running = {e.id for e in ledger.events(states=["running"])}
        assert running == {e.id for e in a_events + b_events}
    time.sleep(0.3)  # the remote worker's lease runs out; the dead local one is taken back at start

    code, seconds = run_once(root)
    assert code == 0, (root / ".crash" / "worker.log").read_text()
    assert seconds < 30  # did not wait for the dead worker's hour-long lease

    verdict = verify(root, expected)
    assert not verdict.problems, verdict.problems
    with Project(root) as project:
        events = {e.id: e for e in project.ledger.events()}
        assert {e.state for e in events.values()} == {"committed"} and len(events) == 6
        for event_id, snapshot in committed.items():
            assert events[event_id].snapshot_id == snapshot, event_id
            steps = [s.step for s in project.ledger.steps(event_id)]
            assert "commit" not in steps and steps.count("leased") == 2 and steps[-1] == "committed", steps
        # every event id is in exactly one snapshot of t.rows: nothing was appended twice
        table = project.catalog.load_table(TABLES["rows"])
        seen = [i for s in table.metadata.snapshots for i in (s.summary[EVENTS_PROPERTY] or "").split(",") if i]
        assert sorted(seen) == sorted(e.id for e in events.values() if e.pipeline == "rows")
        assert len(table.metadata.snapshots) == 3  # a, b by "the crashed worker", then c by the restart
        rows = project.sql("select k, v from t.latest order by k").to_pylist()
        assert rows == [{"k": 1, "v": 2}, {"k": 2, "v": 2}, {"k": 3, "v": 3}, {"k": 4, "v": 1}, {"k": 5, "v": 1}, {"k": 6, "v": 3}]


# -- regressions: bugs the crash harness found, fixed in the engine ------------------------------------
def test_a_file_rewritten_before_its_first_version_was_processed_is_not_read_twice(tmp_path: Path) -> None:
    root = make_crash_project(tmp_path / "p")
    landing = root / "landing"
    with Project(root) as project:
        engine, src = project.engine(), project.sources["landing"]
        path = land_bytes(landing, "a.csv", csv_text([(1, 1, 1, "v1"), (2, 2, 1, "v1")]).encode())
        engine.land(src, "a.csv")
        land_bytes(landing, "a.csv", csv_text([(3, 1, 2, "v2"), (4, 2, 2, "v2"), (5, 3, 2, "v2")]).encode())
        engine.land(src, "a.csv")  # the watcher saw the rewrite before v1 was processed
        project.run(once=True)
        dup = project.sql("select id, count(*) as n from t.rows group by id having count(*) > 1").to_pylist()
    assert dup == []  # once: ids 3, 4, 5 twice (v1's event read v2's bytes); now v1's event is superseded


def test_a_same_size_rewrite_with_the_same_mtime_is_ingested(tmp_path: Path) -> None:
    root = make_crash_project(tmp_path / "p")
    landing = root / "landing"
    with Project(root) as project:
        engine, src = project.engine(), project.sources["landing"]
        path = land_bytes(landing, "a.csv", csv_text([(1, 1, 1, "v1")]).encode())
        engine.land(src, "a.csv")
        project.run(once=True)
        stat = path.stat()
        land_bytes(landing, "a.csv", csv_text([(2, 1, 2, "v2")]).encode())  # new bytes, same size
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # cp -p, rsync -t, or one timestamp tick
        engine.land(src, "a.csv")
        project.run(once=True)
        ids = sorted(r["id"] for r in project.sql("select id from t.rows").to_pylist())
    # once: [1], the stamp ignored ctime and v2 was skipped by every scan; v2 replaces v1's rows
    # in the append table (issue 8 item 4: an append table holds each object's newest version)
    assert ids == [2]


def test_an_event_another_worker_committed_meanwhile_keeps_that_snapshot_id(tmp_path: Path) -> None:
    root = make_crash_project(tmp_path / "p")
    landing = root / "landing"
    land_bytes(landing, "a.csv", csv_text([(1, 1, 1, "a")]).encode())
    land_bytes(landing, "b.csv", csv_text([(2, 2, 2, "b")]).encode())
    with Project(root) as project:
        src = project.sources["landing"]
        slow = project.engine()  # a worker elsewhere: leases a.csv, processes it, and its lease runs out
        slow.land(src, "a.csv")
        a_rows = next(e for e in project.ledger.lease("host-a:1:aaaaaa", limit=10, ttl=0.1) if e.pipeline == "rows")
        out = slow.runners["rows"].run(a_rows, src.local_path(a_rows.key))
        time.sleep(0.2)
        worker = project.engine()
        worker.land(src, "b.csv")
        skip = worker._skip_already_committed
        committed: list[int | None] = []

        def then_the_slow_worker_commits(events: list) -> None:  # after this worker's history check
            skip(events)
            if not committed:
                staged = Staged(a_rows.id, out.source_ref, out.data, a_rows.landed_at, out.spilled)
                committed.append(slow.writer("t.rows").commit([staged])[0])

        worker._skip_already_committed = then_the_slow_worker_commits  # type: ignore[method-assign]
        worker.drain()
        history = committed_event_ids(project.catalog.load_table("t.rows"))
        assert project.sql("select count(*) as n from t.rows").to_pylist() == [{"n": 2}]  # no duplicate: fine
        assert history[a_rows.id] == committed[0]
        event = project.ledger.get(a_rows.id)
        assert event is not None and event.snapshot_id == committed[0]  # once: b's snapshot


def test_upsert_keeps_the_newest_file_when_an_older_one_commits_late(tmp_path: Path) -> None:
    root = make_crash_project(tmp_path / "p")
    landing = root / "landing"
    with Project(root) as project:
        engine, src = project.engine(), project.sources["landing"]
        engine.land(src, src.key_for(land_bytes(landing, "a.csv", csv_text([(1, 7, 1, "old")]).encode())))
        project.ledger.lease("other-host:4242:cafe00", limit=10, ttl=1.0)  # that worker dies
        engine.land(src, src.key_for(land_bytes(landing, "b.csv", csv_text([(2, 7, 2, "new")]).encode())))
        project.run(once=True)  # b commits at once, a after the dead worker's lease expires
        rows = project.sql("select k, v from t.latest").to_pylist()
    assert rows == [{"k": 7, "v": 2}]  # once: v 1; now b waits for the older a (ordered lease)

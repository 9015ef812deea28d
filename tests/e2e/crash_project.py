"""The crash project and what must be true of it: config, landing files, `Expected`, `verify`.

Part of the kill -9 harness (tests/e2e/crash_harness.py drives the workers). Every landed file
fans out to two pipelines:

* `rows`   -> `t.rows`   append mode: every `id` is unique, so each must appear exactly once;
  files of 5+ rows exceed `spill_bytes` and write their data files ahead of the commit;
* `latest` -> `t.latest` upsert on `k`: files reuse keys; the newest landed file must win.

Nothing here imports pytest.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "TABLES",
    "Expected",
    "FileStream",
    "Verdict",
    "csv_text",
    "land_bytes",
    "make_crash_project",
    "verify",
]

COLUMNS = "id,k,v,note"
SCHEMA = {"id": "long", "k": "long", "v": "long", "note": "string"}
TABLES = {"rows": "t.rows", "latest": "t.latest"}


# -- project ----------------------------------------------------------------------------------------
# maintenance every few commits, so kills also land inside compaction and snapshot expiry
CRASH_MAINTENANCE = {"every_commits": 4, "keep_snapshots": 3, "compact_min_files": 2, "target_file_bytes": "1MB"}


def make_crash_project(
    root: Path, *, settle: str = "20ms", max_wait: str = "50ms", spill_bytes: int | None = None, lease: str | None = None,
    maintenance: dict[str, Any] | None = CRASH_MAINTENANCE, ledger: str | None = None, catalog: str | None = None,
    source: dict[str, Any] | None = None, s3: dict[str, Any] | None = None,
) -> Path:
    """A project with folder source `landing` fanned out to an append and an upsert pipeline.

    With `spill_bytes`, append events holding more than that many bytes write their data files
    ahead of the commit (the streaming path), smaller ones commit from memory. `ledger` and
    `catalog` are URIs (e.g. PostgreSQL); None keeps the embedded SQLite defaults. `source`
    replaces the folder source's config (an S3 bucket: tests/e2e/s3_chaos.py), `s3` is the
    project's `s3:` section.
    """
    read = {"format": "csv", "schema": dict(SCHEMA)}
    rows_batch: dict[str, Any] = {"max_wait": max_wait}
    if spill_bytes is not None:
        rows_batch["spill_bytes"] = spill_bytes
    config: dict[str, Any] = {
        "sources": {"landing": source or {"type": "folder", "path": "landing", "settle": settle}},
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
    if s3 is not None:
        config["s3"] = s3
        # an outage of the store counts attempts, as any transient failure does, and so does
        # each lease a killed worker held: with outage trials between the kills the default 5
        # can run out for a file that met both (it would sit in the dead letters, rows missing)
        for pipeline in config["pipelines"].values():
            pipeline["retry"] = {"max_attempts": 20}
    if lease is not None:
        config["lease"] = lease
    for name, uri in (("ledger", ledger), ("catalog", catalog)):
        if uri is not None:
            config[name] = uri
    if maintenance is not None:
        config["maintenance"] = maintenance
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
        land: Callable[[str, bytes], Any] | None = None,
    ) -> None:
        super().__init__(name="crash-file-stream", daemon=True)
        self.landing, self.expected = landing, expected
        # where a file goes: the landing folder, or `land(name, bytes)` (a bucket)
        self.land = land or (lambda name, data: land_bytes(landing, name, data))
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
        self.land(name, csv_text(rows).encode())
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
    maintenance_runs: int = 0  # finished maintenance jobs (compaction, expiry) between the kills
    expired_events: int = 0  # committed events whose snapshot maintenance expired
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
        history, live = {}, {}
        for pipeline, table in TABLES.items():
            loaded = project.catalog.load_table(table)
            history[pipeline] = committed_event_ids(loaded)
            live[pipeline] = {s.snapshot_id for s in loaded.metadata.snapshots}
        per_event = {r["_icefloe_event"]: r["n"] for r in project.sql(
            "select _icefloe_event, count(*) as n from t.rows group by _icefloe_event").to_pylist()}  # fmt: skip
        bad_snapshots, bad_counts = [], []
        for e in events:
            if e.state != "committed" or e.pipeline is None:
                continue
            # a snapshot maintenance expired no longer proves anything; one still live must hold it
            expired = e.id not in history[e.pipeline] and e.snapshot_id is not None and e.snapshot_id not in live[e.pipeline]
            v.expired_events += expired
            if not expired and history[e.pipeline].get(e.id) != e.snapshot_id:
                bad_snapshots.append((e.id, e.pipeline, e.snapshot_id, history[e.pipeline].get(e.id)))
            if e.pipeline == "rows" and per_event.get(e.id, 0) != expected.rows_per_file.get(e.key, -1):
                bad_counts.append((e.key, per_event.get(e.id, 0), expected.rows_per_file.get(e.key)))
        v.snapshot_mismatches = len(bad_snapshots)
        # through the Ledger API, so the same check reads a SQLite or a PostgreSQL ledger
        v.spilled_events = sum(
            1 for e in events if e.pipeline == "rows" and any(s.step == "spill" for s in project.ledger.steps(e.id))
        )
        v.maintenance_runs = sum(1 for job in project.ledger.jobs() if job.state == "succeeded")
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

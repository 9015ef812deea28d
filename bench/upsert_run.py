"""Benchmark: an upsert file landed and processed by `icefloe run --once`, against pyiceberg's `Table.upsert`.

A 100k-row Parquet file (50% updates of keys drawn uniformly, so every data file holds some, 50%
new keys) lands in the folder source of an upsert pipeline whose table holds 2M rows in 200 data
files, committed by 200 earlier upserts. The icefloe contender is the whole `Project.run(once=True)`
in a fresh process (open the project, route, read the file, check, dedupe, upsert, commit, record
the event), with that process's peak RSS; the peer reads the same file with pyarrow and calls
`Table.upsert` on an identical 200-file table. Both final tables are compared.

Run alone: `python -m bench.upsert_run [--quick]`.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import yaml

# before pyarrow loads, as the `icefloe` command does: it sets the allocator up (icefloe/__init__.py)
import icefloe  # noqa: F401
from bench.common import BenchResult, log, peak, run_child, secs, temp_dir
from bench.upsert import KEY, SEED, TABLE, _catalog, _outcome, orders, upsert_batch

NUMBER = 16
TARGET_SPEEDUP = 50.0
TARGET_RSS_MB = 400.0


def _project(root: Path) -> Path:
    config = {
        "catalog": "sqlite:///catalog.db",
        "warehouse": "warehouse/",
        "sources": {"landing": {"type": "folder", "path": "landing"}},
        "routes": [{"source": "landing", "match": "**/*.parquet", "pipeline": "orders"}],
        "pipelines": {"orders": {"read": {"format": "parquet"}, "write": {"table": TABLE, "mode": "upsert", "key": KEY}}},
        # off: with it on, the build's 200 small files would have been compacted long ago, and
        # run --once would also wait for a maintenance run; this measures the upsert
        "maintenance": {"enabled": False},
    }
    (root / "landing").mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def build_icefloe(args: dict[str, Any]) -> dict[str, Any]:
    """The project's table as an upsert pipeline leaves it: `files` upsert commits of new keys."""
    import pyarrow as pa

    from icefloe.config import WriteConfig
    from icefloe.lake import Staged, TableWriter, open_catalog

    root = _project(Path(args["work"]))
    rows, files = args["rows"], args["files"]
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", root)
    writer = TableWriter(catalog, WriteConfig(table=TABLE, mode="upsert", key=KEY))
    data = orders(1, rows, SEED)
    per = -(-rows // files)
    for n in range(files):
        chunk = data.slice(n * per, per)
        event = f"build-{n:04d}"
        chunk = chunk.append_column("_icefloe_event", pa.array([event] * chunk.num_rows, pa.string()))
        chunk = chunk.append_column("_icefloe_source", pa.array([f"landing:build/{n}.parquet"] * chunk.num_rows, pa.string()))
        chunk = chunk.append_column("_icefloe_ingested_at", pa.array([time.time_ns() // 1000] * chunk.num_rows, pa.timestamp("us", tz="UTC")))
        writer.commit([Staged(event, f"landing:build/{n}.parquet", chunk)])
    table = catalog.load_table(TABLE)
    return {"seconds": 0.0, "files": len(list(table.scan().plan_files())), "snapshots": len(table.metadata.snapshots)}


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    """`icefloe run --once` after the upsert file landed: the whole run, in this fresh process."""
    import pyiceberg.catalog.sql
    import pyiceberg.io.pyarrow  # noqa: F401

    import icefloe.engine
    import icefloe.lake.writer  # noqa: F401
    from bench.common import rss_mb
    from icefloe.project import Project

    root = Path(args["work"])
    start_rss = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    with Project(root) as project:
        summary = project.run(once=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the checks read the whole table
    # the process tree: a child the run started and waited for (none expected with maintenance off)
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert summary.committed == 1 and not summary.dead, f"run --once: {summary}"
    from icefloe.lake import open_catalog

    catalog = open_catalog("sqlite:///catalog.db", "warehouse", root)
    table = catalog.load_table(TABLE)
    current = table.current_snapshot()
    manifests = current.manifests(table.io) if current is not None else []
    # a snapshot lists the entries it deleted itself; ones carried from earlier snapshots are dead weight
    dead = sum(
        1 for m in manifests
        if not m.has_added_files() and not m.has_existing_files() and current is not None and m.added_snapshot_id != current.snapshot_id
    )  # fmt: skip
    before = len(table.metadata.snapshots) - 1
    outcome = _outcome(catalog, before)
    return {"seconds": seconds, "cpu_seconds": cpu, "start_rss_mb": start_rss, "run_peak_rss_mb": run_peak,
            "children_peak_rss_mb": children_peak, "manifests": len(manifests), "manifests_without_live_files": dead, **outcome}  # fmt: skip


def pyiceberg_contender(args: dict[str, Any]) -> dict[str, Any]:
    """pyarrow reads the same file; `Table.upsert(batch, join_cols=["order_id"])` on a fresh load."""
    import pyarrow.parquet as pq
    import pyiceberg.io.pyarrow
    import pyiceberg.table.upsert_util  # noqa: F401

    from bench.common import rss_mb

    catalog = _catalog(Path(args["work"]))
    before = len(catalog.load_table(TABLE).metadata.snapshots)
    start_rss = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    batch = pq.read_table(args["file"])
    table = catalog.load_table(TABLE)
    batch = batch.cast(table.schema().as_arrow())
    result = table.upsert(batch, join_cols=KEY)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {"rows_updated": result.rows_updated, "rows_inserted": result.rows_inserted}
    return {"seconds": seconds, "cpu_seconds": cpu, "start_rss_mb": start_rss, "run_peak_rss_mb": run_peak, **counts,
            **_outcome(catalog, before)}  # fmt: skip


def write_batch(args: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    pq.write_table(upsert_batch(args["rows"], args["batch"]), args["file"])
    return {"seconds": 0.0}


def measure(rows: int, files: int, batch: int) -> BenchResult:
    result = BenchResult(NUMBER, f"`icefloe run --once` on a landed {batch // 1000}k-row upsert file into {rows / 1e6:g}M rows in {files} files")
    log(f"[{NUMBER}] {result.title}")
    ours_dir, peer_dir = temp_dir("upsert-run-icefloe-"), temp_dir("upsert-run-pyiceberg-")
    upsert_file = ours_dir / "landing" / "upsert.parquet"
    built = run_child("bench.upsert_run:build_icefloe", {"work": str(ours_dir), "rows": rows, "files": files}, label="upsert-run build icefloe")
    assert built["files"] == files, f"built {built['files']} files, wanted {files}"
    run_child("bench.upsert:build_table", {"work": str(peer_dir), "rows": rows, "files": files}, label="upsert-run build pyiceberg")
    run_child("bench.upsert_run:write_batch", {"file": str(upsert_file), "rows": rows, "batch": batch}, label="upsert-run batch")
    ours = run_child("bench.upsert_run:icefloe_contender", {"work": str(ours_dir)}, label="upsert-run icefloe")
    log(f"  icefloe run --once: {ours['seconds']:.2f}s, peak RSS {ours['peak_rss_mb']:.0f} MB")
    peer = run_child("bench.upsert_run:pyiceberg_contender", {"work": str(peer_dir), "file": str(upsert_file)}, label="upsert-run pyiceberg")
    log(f"  pyiceberg Table.upsert: {peer['seconds']:.2f}s, peak RSS {peer['peak_rss_mb']:.0f} MB")
    expected = rows + batch - batch // 2
    for contender in (ours, peer):
        assert contender["rows"] == contender["distinct_keys"] == expected, f"{contender['rows']} rows after upsert"
    assert ours["checksum"] == peer["checksum"], f"tables differ: {ours['checksum']} vs {peer['checksum']}"
    speedup = peer["seconds"] / ours["seconds"]
    full = rows >= 2_000_000
    result.row("run --once (whole process work) vs Table.upsert", secs(ours["seconds"]), f"pyiceberg: {secs(peer['seconds'])}",
               f"{speedup:.1f}x faster", f">= {TARGET_SPEEDUP:.0f}x" if full else "", speedup >= TARGET_SPEEDUP if full else None)  # fmt: skip
    result.row("CPU time", secs(ours["cpu_seconds"]), f"pyiceberg: {secs(peer['cpu_seconds'])}")
    # the process and any child it waited for, summed (their peaks need not coincide: an upper bound)
    tree = ours["run_peak_rss_mb"] + ours["children_peak_rss_mb"]
    result.row("peak RSS until the run ended (process tree)", f"{tree:.0f} MB (start {ours['start_rss_mb']:.0f})",
               f"pyiceberg: {peer['run_peak_rss_mb']:.0f} MB (start {peer['start_rss_mb']:.0f})", "",
               f"<= {TARGET_RSS_MB:.0f} MB", tree <= TARGET_RSS_MB)  # fmt: skip
    result.row("peak RSS incl. the checks after (whole table read)", peak(ours), f"pyiceberg: {peak(peer)}")
    result.row("data files deleted / added", f"{ours['files_deleted']} / {ours['files_added']}",
               f"pyiceberg: {peer['files_deleted']} / {peer['files_added']}")  # fmt: skip
    result.row("manifests after / carried with no live file", f"{ours['manifests']} / {ours['manifests_without_live_files']}", "", "", "0 carried", ours["manifests_without_live_files"] == 0)
    result.row("rows after (asserted; same checksums)", f"{ours['rows']:,}", f"pyiceberg: {peer['rows']:,}", "", f"= {expected:,}", True)
    result.notes += [
        (
            f"icefloe table: {rows:,} rows in {files} data files from {files} earlier upsert commits (SQLite catalog); pyiceberg's: the "
            f"same rows in {files} appends. Upsert file: {batch // 2:,} existing keys with new values + {batch - batch // 2:,} new keys."
        ),
        (
            "icefloe: `Project(root).run(once=True)` timed from opening the project to the end of the run, in a fresh process "
            "after its imports (as the peer's clock also starts after them); peak RSS is that process's, imports included. "
            "Maintenance is off in this project (with it on, the build's small files would have been compacted long before). pyiceberg: `pq.read_table` + `Table.upsert`, timed the same way."
        ),
        "One run each; the 2 cores are shared with other work, so the ratio (same run) says more than the seconds.",
    ]
    result.data = {"icefloe": ours, "pyiceberg": peer, "speedup": speedup}
    return result


def run(quick: bool) -> BenchResult:
    return measure(200_000, 20, 10_000) if quick else measure(2_000_000, 200, 100_000)


if __name__ == "__main__":
    from bench.__main__ import print_results

    print_results([run("--quick" in sys.argv)])

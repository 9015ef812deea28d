"""Benchmarks for table maintenance.

`run_commits`: 10,000 small commits through icefloe's TableWriter with the default maintenance
policy (a `Maintainer` deciding after every commit, runs in the same process as in a worker):
per-commit latency of the first and last 100 commits, metadata against data size; raw pyiceberg
(`table.append` per commit, no maintenance) for the first 1,000 as the peer.

`run_groupby`: a GROUP BY through icefloe's QueryEngine over a table of 2,000 small files, before
and after compaction.

Run alone: `python -m bench.maintain [--quick] [commits|groupby]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, log, mean, percentile, run_child, temp_dir, write_project

NUMBER_COMMITS, NUMBER_GROUPBY = 5, 6
TABLE = "bench.orders"
MAX_RATIO = 1.5  # last 100 commits vs first 100
MAX_METADATA_SHARE = 0.10  # metadata on disk vs live data
GROUPBY_SQL = f"select status, count(*) as n, sum(amount) as total, max(qty) as qty from {TABLE} group by status order by status"


def _orders(first_id: int, rows: int, event: str | None = None) -> Any:
    """`rows` deterministic orders in the bench's 6-column shape (plus lineage when `event`)."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    ids = range(first_id, first_id + rows)
    base = dt.datetime(2026, 11, 1)
    columns: dict[str, Any] = {
        "order_id": pa.array(ids, pa.int64()),
        "ts": pa.array([base + dt.timedelta(seconds=i * 7 % (86400 * 30)) for i in ids], pa.timestamp("us")),
        "customer": pa.array([f"cust{i * 7919 % 100_000:05d}" for i in ids], pa.large_string()),
        "amount": pa.array([Decimal(i * 104729 % 5_000_000) / 100 for i in ids], pa.decimal128(12, 2)),
        "qty": pa.array([1 + i % 19 for i in ids], pa.int32()),
        "status": pa.array([("new", "paid", "shipped", "returned")[i % 4] for i in ids], pa.large_string()),
    }
    if event is not None:
        columns["_icefloe_event"] = pa.array([event] * rows, pa.large_string())
        columns["_icefloe_source"] = pa.array([f"bench:{event}"] * rows, pa.large_string())
    return pa.table(columns)


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _window_stats(latencies: list[float], size: int = 100) -> dict[str, float]:
    first, last = latencies[:size], latencies[-size:]
    return {
        "first_mean_ms": mean(first) * 1000,
        "last_mean_ms": mean(last) * 1000,
        "first_p50_ms": statistics.median(first) * 1000,
        "last_p50_ms": statistics.median(last) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
    }


# -- contenders (each in a fresh process via bench.child) --------------------------------------------


def icefloe_commits(args: dict[str, Any]) -> dict[str, Any]:
    """TableWriter.commit per small batch, as the engine does it (load, commit onto the loaded table),
    then `Maintainer.after_commit`; a due run happens right there, between two commits."""
    from icefloe.config import WriteConfig
    from icefloe.lake import Staged, TableWriter, open_catalog
    from icefloe.lake.maintain import Maintainer, MaintenancePolicy, table_stats

    root = Path(args["work"])
    commits, rows = args["commits"], args["rows"]
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", root)
    writer = TableWriter(catalog, WriteConfig(table=TABLE))
    maintainer = Maintainer(catalog, {}, MaintenancePolicy(**args.get("policy", {})))
    writer.commit([Staged("warm-up", "bench:warm-up", _orders(0, 1, "warm-up"))])  # creates the table; not counted
    latencies: list[float] = []
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i in range(commits):
        staged = Staged(f"e{i:05d}", f"bench:{i}", _orders(1 + i * rows, rows, f"e{i:05d}"))
        t0 = time.perf_counter()
        current = writer.load()
        writer.commit([staged], table=current)
        latencies.append(time.perf_counter() - t0)
        if maintainer.after_commit(TABLE, current):
            t1 = time.perf_counter()
            report = maintainer.run(TABLE)
            runs.append({"after": i + 1, "seconds": time.perf_counter() - t1, "expired": report.expired_snapshots,
                         "compacted": report.files_compacted, "written": report.files_written})  # fmt: skip
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} commits, last 100 mean {mean(latencies[-100:]) * 1000:.1f} ms", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    table = catalog.load_table(TABLE)
    stats = table_stats(table)
    location = root / "warehouse" / "bench" / "orders"
    return {
        "seconds": seconds,
        "commits": commits,
        "rows": table.scan().count() - 1,
        "latencies_ms": [round(x * 1000, 2) for x in latencies],
        "runs": runs,
        "maintenance_seconds": sum(r["seconds"] for r in runs),
        "stats": stats,
        "metadata_disk_bytes": _disk_bytes(location / "metadata"),
        "data_disk_bytes": _disk_bytes(location / "data"),
        **_window_stats(latencies),
    }


def pyiceberg_commits(args: dict[str, Any]) -> dict[str, Any]:
    """What you would write by hand: `table.append` per small batch, nothing else."""
    from pyiceberg.catalog.sql import SqlCatalog

    root = Path(args["work"])
    commits, rows = args["commits"], args["rows"]
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=f"file://{root / 'warehouse'}")
    catalog.create_namespace("bench")
    table = catalog.create_table(TABLE, schema=_orders(1, 1).schema)
    table.append(_orders(0, 1))  # the same warm-up commit as icefloe's; not counted
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(commits):
        data = _orders(1 + i * rows, rows)
        t0 = time.perf_counter()
        table.append(data)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    location = root / "warehouse" / "bench" / "orders"
    data_bytes = _disk_bytes(location / "data")
    return {
        "seconds": seconds,
        "commits": commits,
        "rows": catalog.load_table(TABLE).scan().count() - 1,
        "latencies_ms": [round(x * 1000, 2) for x in latencies],
        "metadata_disk_bytes": _disk_bytes(location / "metadata"),
        "data_disk_bytes": data_bytes,
        **_window_stats(latencies),
    }


def groupby_contender(args: dict[str, Any]) -> dict[str, Any]:
    """A table of N small files (one fast append of N data files, N x rows), a GROUP BY through the
    QueryEngine (pyiceberg planning + DuckDB) before and after `maintain(actions=("compact",))`."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    from icefloe.lake import open_catalog
    from icefloe.lake.maintain import MaintenancePolicy, maintain, table_stats
    from icefloe.project import Project

    root = write_project(Path(args["work"]), source_path="landing", table=TABLE)
    files, rows, repeat = args["files"], args["rows"], args["repeat"]
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", root)
    catalog.create_namespace("bench")
    data = _orders(1, files * rows)
    table = catalog.create_table(TABLE, schema=data.schema)
    with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
        for n in range(files):
            for data_file in _dataframe_to_data_files(tx.table_metadata, data.slice(n * rows, rows), table.io, append.commit_uuid):
                append.append_data_file(data_file)
    before_stats = table_stats(catalog.load_table(TABLE))

    def timed(project: Project) -> tuple[float, list[dict[str, Any]]]:
        times, result = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = project.sql(GROUPBY_SQL).to_pylist()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), result

    with Project(root) as project:
        before, before_rows = timed(project)
    t0 = time.perf_counter()
    report = maintain(catalog, TABLE, MaintenancePolicy(), actions=("compact",))
    compaction = time.perf_counter() - t0
    after_stats = table_stats(catalog.load_table(TABLE))
    with Project(root) as project:
        after, after_rows = timed(project)
    assert before_rows == after_rows, "compaction changed the query result"
    return {
        "seconds": before + after,
        "before_s": before,
        "after_s": after,
        "compaction_s": compaction,
        "files_before": before_stats["data_files"],
        "files_after": after_stats["data_files"],
        "bytes_before": before_stats["data_bytes"],
        "bytes_after": after_stats["data_bytes"],
        "compacted": report.files_compacted,
        "written": report.files_written,
        "rows": sum(r["n"] for r in after_rows),
        "groups": len(after_rows),
    }


# -- the benchmarks ---------------------------------------------------------------------------------


def run_commits(quick: bool) -> BenchResult:
    commits, peer_commits, rows = (1_000, 300, 100) if quick else (10_000, 1_000, 100)
    result = BenchResult(NUMBER_COMMITS, f"{commits:,} small commits ({rows} rows each) with the default maintenance policy")
    log(f"[{NUMBER_COMMITS}] {result.title}")
    log(f"  raw pyiceberg, {peer_commits:,} appends, no maintenance ...")
    peer = run_child("bench.maintain:pyiceberg_commits", {"work": str(temp_dir("commits-pyiceberg-")), "commits": peer_commits, "rows": rows}, label="commits pyiceberg")
    log(f"  raw pyiceberg: first/last 100 {peer['first_mean_ms']:.0f}/{peer['last_mean_ms']:.0f} ms")
    log(f"  icefloe, {commits:,} commits with Maintainer ...")
    ours = run_child("bench.maintain:icefloe_commits", {"work": str(temp_dir("commits-icefloe-")), "commits": commits, "rows": rows}, label="commits icefloe")
    log(f"  icefloe: first/last 100 {ours['first_mean_ms']:.0f}/{ours['last_mean_ms']:.0f} ms, {len(ours['runs'])} maintenance runs")
    assert ours["rows"] == commits * rows, f"icefloe table has {ours['rows']} rows, expected {commits * rows}"
    assert peer["rows"] == peer_commits * rows, f"pyiceberg table has {peer['rows']} rows, expected {peer_commits * rows}"

    ratio = ours["last_mean_ms"] / ours["first_mean_ms"]
    peer_ratio = peer["last_mean_ms"] / peer["first_mean_ms"]
    share = ours["metadata_disk_bytes"] / max(ours["stats"]["data_bytes"], 1)
    peer_share = peer["metadata_disk_bytes"] / max(peer["data_disk_bytes"], 1)
    runs = ours["runs"]
    result.row("mean commit, first 100", f"{ours['first_mean_ms']:.0f} ms", f"pyiceberg: {peer['first_mean_ms']:.0f} ms")
    result.row(
        f"mean commit, last 100 (of {commits:,} / pyiceberg {peer_commits:,})", f"{ours['last_mean_ms']:.0f} ms",
        f"pyiceberg: {peer['last_mean_ms']:.0f} ms",
    )  # fmt: skip
    result.row("last 100 / first 100", f"{ratio:.2f}x", f"pyiceberg: {peer_ratio:.2f}x", "", f"<= {MAX_RATIO}x", ratio <= MAX_RATIO)
    result.row("p50 commit, first / last 100", f"{ours['first_p50_ms']:.0f} / {ours['last_p50_ms']:.0f} ms", f"pyiceberg: {peer['first_p50_ms']:.0f} / {peer['last_p50_ms']:.0f} ms")
    result.row("p99 / max commit", f"{ours['p99_ms']:.0f} / {ours['max_ms']:.0f} ms", f"pyiceberg: {peer['p99_ms']:.0f} / {peer['max_ms']:.0f} ms")
    result.row(
        "metadata on disk / live data", f"{share:.1%} ({ours['metadata_disk_bytes'] / 1e6:.1f} / {ours['stats']['data_bytes'] / 1e6:.1f} MB)",
        f"pyiceberg: {peer_share:.0%} ({peer['metadata_disk_bytes'] / 1e6:.1f} / {peer['data_disk_bytes'] / 1e6:.1f} MB)",
        # metadata stays flat (bounded snapshots and manifests) while data grows with commits, so the
        # share is judged on the full 10,000-commit run only
        "", f"< {MAX_METADATA_SHARE:.0%}" + (" (full run)" if quick else ""), None if quick else share < MAX_METADATA_SHARE,
    )  # fmt: skip
    stats = ours["stats"]
    result.row("table at the end", f"{stats['snapshots']} snapshots, {stats['manifests']} manifests, {stats['data_files']} data files")
    if runs:
        seconds = [r["seconds"] for r in runs]
        result.row(
            "maintenance runs", f"{len(runs)}: mean {mean(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms",
            "", f"{ours['maintenance_seconds'] / commits * 1000:.1f} ms per commit amortised",
        )  # fmt: skip
    result.row("rows in table (asserted)", f"{ours['rows']:,}", f"pyiceberg: {peer['rows']:,}", "", "", True)
    result.notes += [
        (
            "icefloe: `TableWriter.commit` of one event (orders shape + lineage columns) per commit, timed from the table load to the "
            "committed snapshot, as the engine does it; `Maintainer.after_commit` after each, and a due `Maintainer.run` (compact, "
            "rewrite manifests, expire; orphans at most hourly) runs in between, not counted in the commit latency (shown apart)."
        ),
        (
            f"pyiceberg: `table.append` of the same batches, no maintenance, {peer_commits:,} commits. Metadata on disk = every file "
            "under the table's metadata/ folder; icefloe's live data = data files of the current snapshot."
        ),
    ]
    result.data = {"icefloe": {k: v for k, v in ours.items() if k != "latencies_ms"}, "pyiceberg": {k: v for k, v in peer.items() if k != "latencies_ms"},
                   "icefloe_latencies_ms": ours["latencies_ms"], "pyiceberg_latencies_ms": peer["latencies_ms"]}  # fmt: skip
    return result


def run_groupby(quick: bool) -> BenchResult:
    files, rows, repeat = (200, 1_000, 3) if quick else (2_000, 1_000, 5)
    result = BenchResult(NUMBER_GROUPBY, f"GROUP BY over {files:,} small files x {rows:,} rows, before and after compaction")
    log(f"[{NUMBER_GROUPBY}] {result.title}")
    out = run_child("bench.maintain:groupby_contender", {"work": str(temp_dir("groupby-")), "files": files, "rows": rows, "repeat": repeat}, label="groupby")
    assert out["rows"] == files * rows, f"query counted {out['rows']} rows, expected {files * rows}"
    speedup = out["before_s"] / out["after_s"]
    result.row("GROUP BY, before compaction", f"{out['before_s'] * 1000:.0f} ms", "", "", "")
    result.row("GROUP BY, after compaction", f"{out['after_s'] * 1000:.0f} ms", "", f"{speedup:.1f}x faster")
    result.row("data files", f"{out['files_before']:,} -> {out['files_after']:,}", "", "", "")
    result.row("compaction run", f"{out['compaction_s']:.2f} s ({out['compacted']:,} files -> {out['written']})")
    result.row("rows counted (asserted)", f"{out['rows']:,}", "", "", f"= {files * rows:,}", True)
    result.notes += [
        (
            f"`{GROUPBY_SQL}` through `Project.sql` (pyiceberg plans the scan, DuckDB reads the planned Parquet files); "
            f"median of {repeat} runs each; results asserted equal before and after."
        ),
        (
            "The table is built with one fast append of all the small files; compaction is `maintain(actions=('compact',))` "
            "with the default policy (128 MB target)."
        ),
    ]
    result.data = out
    return result


run = run_commits


if __name__ == "__main__":
    which = [a for a in sys.argv[1:] if not a.startswith("-")] or ["commits", "groupby"]
    for name in which:
        res = {"commits": run_commits, "groupby": run_groupby}[name]("--quick" in sys.argv)
        for r in res.rows:
            print(" | ".join(r.values()))
        for note in res.notes:
            print("  -", note)

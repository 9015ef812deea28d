"""Benchmark: upsert 100k rows (50% updates) into a 2M-row table laid out as 1 file and as 200 files.

icefloe (`TableWriter.commit` in upsert mode, which rewrites only the files holding the batch's
keys) against pyiceberg's `Table.upsert` on an identical table built the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, log, mb, rss_mb, run_child, secs, temp_dir

NUMBER = 7  # position in `python -m bench`; the registry in bench/__main__.py decides
TARGET_SECONDS = 1.5
TARGET_SPEEDUP_MANY = 10.0  # vs pyiceberg on the many-file layout
TABLE = "bench.orders"
KEY = ["order_id"]
SEED = 20261101


# -- data (deterministic, built with Arrow kernels: no per-row Python) ------------------------------


def _ints(n: int, lo: int, hi: int, seed: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.floor(pc.add(pc.multiply(pc.random(n, initializer=seed), hi - lo), lo)).cast(pa.int64())


def orders(first: int, n: int, seed: int) -> Any:
    """Rows of the shared bench shape (order_id, ts, customer, amount, qty, status) for ids first.."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(range(first, first + n), pa.int64())
    seconds = pc.subtract(pc.multiply(ids, 7), pc.multiply(pc.divide(pc.multiply(ids, 7), 86400 * 30), 86400 * 30))
    ts = pc.add(pc.multiply(seconds, 1_000_000), 1_793_491_200_000_000).cast(pa.timestamp("us"))  # from 2026-11-01
    customer = pc.binary_join_element_wise("cust", pc.utf8_lpad(_ints(n, 0, 100_000, seed).cast(pa.string()), 5, "0"), "")
    cents = _ints(n, 100, 5_000_000, seed + 1).cast(pa.decimal128(38, 0)).cast(pa.decimal128(20, 2))
    amount = pc.divide(cents, pa.scalar(100, pa.decimal128(3, 0))).cast(pa.decimal128(12, 2))
    qty = _ints(n, 1, 20, seed + 2).cast(pa.int32())
    status = pc.take(pa.array(["new", "paid", "shipped", "returned"]), _ints(n, 0, 4, seed + 3))
    return pa.table({"order_id": ids, "ts": ts, "customer": customer, "amount": amount, "qty": qty, "status": status})


def upsert_batch(table_rows: int, batch_rows: int) -> Any:
    """Half updates (distinct ids drawn uniformly from the table, new values), half new ids."""
    import pyarrow as pa
    import pyarrow.compute as pc

    updates = batch_rows // 2
    drawn = pc.unique(pc.add(_ints(updates * 2, 0, table_rows, SEED + 10), 1))
    assert len(drawn) >= updates, "not enough distinct ids drawn"
    ids = drawn.slice(0, updates)
    changed = orders(1, table_rows, SEED + 20).take(pc.subtract(ids, 1))
    new = orders(table_rows + 1, batch_rows - updates, SEED + 30)
    return pa.concat_tables([changed, new])


def _catalog(work: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("bench", uri=f"sqlite:///{work / 'catalog.db'}", warehouse=f"file://{work / 'warehouse'}")


# -- children (each in a fresh process via bench.child) ---------------------------------------------


def build_table(args: dict[str, Any]) -> dict[str, Any]:
    """The starting table: `rows` rows as `files` data files, one append (commit) per file, the way
    a table grows from many ingests (so the many-file layout also has that many manifests)."""
    import pyarrow as pa

    work, rows, files = Path(args["work"]), args["rows"], args["files"]
    work.mkdir(parents=True, exist_ok=True)
    catalog = _catalog(work)
    catalog.create_namespace("bench")
    data = orders(1, rows, SEED)
    data = data.cast(pa.schema([f.with_nullable(True) for f in data.schema]))
    table = catalog.create_table(TABLE, schema=data.schema)
    per = -(-rows // files)
    for n in range(files):
        table.append(data.slice(n * per, per))
    table = catalog.load_table(TABLE)
    return {"seconds": 0.0, "files": len(list(table.scan().plan_files())), "snapshots": len(table.metadata.snapshots)}


def _outcome(catalog: Any, snapshots_before: int) -> dict[str, Any]:
    """What the table holds after the upsert (checked against the other contender) and what it took."""
    import pyarrow.compute as pc

    table = catalog.load_table(TABLE)
    data = table.scan().to_arrow()
    added = table.metadata.snapshots[snapshots_before:]
    total = {k: sum(int((s.summary or {}).get(k, 0) or 0) for s in added) for k in ("added-data-files", "deleted-data-files")}
    return {
        "rows": data.num_rows,
        "distinct_keys": len(pc.unique(data["order_id"])),
        "checksum": [str(pc.sum(data[c]).as_py()) for c in ("order_id", "amount", "qty")]
        + [str(pc.count_distinct(data["customer"]).as_py()), str(pc.sum(pc.equal(data["status"], "paid")).as_py())],
        "snapshots_added": len(added),
        "files_deleted": total["deleted-data-files"],
        "files_added": total["added-data-files"],
        "files_after": len(list(table.scan().plan_files())),
    }


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    """What an upsert pipeline's commit runs: TableWriter.commit in upsert mode (exactly-once check,
    schema check, newest-wins dedupe, then `icefloe.lake.upsert`), one snapshot."""
    from icefloe.config import WriteConfig
    from icefloe.lake.writer import Staged, TableWriter

    catalog = _catalog(Path(args["work"]))
    batch = upsert_batch(args["rows"], args["batch"])
    before = len(catalog.load_table(TABLE).metadata.snapshots)
    writer = TableWriter(catalog, WriteConfig(table=TABLE, mode="upsert", key=KEY))
    start_rss = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    writer.commit([Staged("bench-upsert", "bench:batch", batch)])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "start_rss_mb": start_rss, **_outcome(catalog, before)}


def pyiceberg_contender(args: dict[str, Any]) -> dict[str, Any]:
    """`Table.upsert(batch, join_cols=["order_id"])` on a freshly loaded table."""
    import pyiceberg.io.pyarrow  # noqa: F401 - what upsert imports lazily; icefloe has it loaded too
    import pyiceberg.table.upsert_util  # noqa: F401

    catalog = _catalog(Path(args["work"]))
    batch = upsert_batch(args["rows"], args["batch"])
    before = len(catalog.load_table(TABLE).metadata.snapshots)
    start_rss = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    result = catalog.load_table(TABLE).upsert(batch, join_cols=KEY)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = {"rows_updated": result.rows_updated, "rows_inserted": result.rows_inserted}
    return {"seconds": seconds, "cpu_seconds": cpu, "start_rss_mb": start_rss, **counts, **_outcome(catalog, before)}


# -- the benchmark ----------------------------------------------------------------------------------


def _contend(target: str, label: str, rows: int, files: int, batch: int) -> dict[str, Any]:
    work = temp_dir(f"upsert-{label}-{files}f-")
    built = run_child("bench.upsert:build_table", {"work": str(work), "rows": rows, "files": files}, label=f"upsert build {files}")
    assert built["files"] == files, f"built {built['files']} files, wanted {files}"
    result = run_child(f"bench.upsert:{target}", {"work": str(work), "rows": rows, "batch": batch}, label=f"upsert {label} {files}")
    log(f"  {label}, {files} file(s): {result['seconds']:.2f}s (CPU {result['cpu_seconds']:.2f}s), files -{result['files_deleted']} +{result['files_added']}, "
        f"{result['snapshots_added']} snapshot(s), peak RSS {result['peak_rss_mb']:.0f} MB")  # fmt: skip
    return result


def run(quick: bool) -> BenchResult:
    rows, batch, layouts, repeat = (200_000, 10_000, (1, 20), 1) if quick else (2_000_000, 100_000, (1, 200), 3)
    result = BenchResult(NUMBER, f"upsert {batch // 1000}k rows (50% updates) into a {rows / 1e6:g}M-row table")
    log(f"[{NUMBER}] {result.title}")
    expected_rows = rows + batch - batch // 2
    for files in layouts:
        runs = [_contend("icefloe_contender", "icefloe", rows, files, batch) for _ in range(repeat)]
        ours = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        log(f"  pyiceberg Table.upsert on {files} file(s) (slow: it rewrites every file it cannot rule out) ...")
        peer = _contend("pyiceberg_contender", "pyiceberg", rows, files, batch)
        for contender in (ours, peer):
            assert contender["rows"] == contender["distinct_keys"] == expected_rows, f"{contender['rows']} rows after upsert"
        assert ours["checksum"] == peer["checksum"], f"tables differ: {ours['checksum']} vs {peer['checksum']}"
        speedup = peer["seconds"] / ours["seconds"]
        # pyiceberg's cost grows with files x keys, so the speedup target applies at full size only
        many = files == max(layouts) and not quick
        target = f"<= {TARGET_SECONDS} s" + (f", >= {TARGET_SPEEDUP_MANY:.0f}x" if many else "")
        ok = ours["seconds"] <= TARGET_SECONDS and (not many or speedup >= TARGET_SPEEDUP_MANY)
        layout = f"{files} file{'s' if files > 1 else ''}"
        result.row(f"{layout}: upsert time", secs(ours["seconds"]), f"pyiceberg: {secs(peer['seconds'])}", f"{speedup:.1f}x faster", target, ok)
        if repeat > 1:
            result.row(f"{layout}: icefloe runs", ", ".join(f"{r['seconds']:.2f}" for r in runs) + " s")
        # CPU seconds (all threads) say how much of the time was work rather than waiting on a busy machine
        result.row(f"{layout}: CPU time", secs(ours["cpu_seconds"]), f"pyiceberg: {secs(peer['cpu_seconds'])}")
        result.row(
            f"{layout}: data files deleted / added",
            f"{ours['files_deleted']} / {ours['files_added']}", f"pyiceberg: {peer['files_deleted']} / {peer['files_added']}",
        )  # fmt: skip
        result.row(f"{layout}: snapshots added", str(ours["snapshots_added"]), f"pyiceberg: {peer['snapshots_added']}")
        result.row(f"{layout}: peak RSS", f"{mb(ours['peak_rss_mb'])} (start {ours['start_rss_mb']:.0f})",
                   f"pyiceberg: {mb(peer['peak_rss_mb'])} (start {peer['start_rss_mb']:.0f})")  # fmt: skip
        result.row(f"{layout}: rows after (asserted; same checksums)", f"{ours['rows']:,}", f"pyiceberg: {peer['rows']:,}", "",
                   f"= {expected_rows:,}", True)  # fmt: skip
        result.data[layout] = {"icefloe": ours, "icefloe_runs": runs, "pyiceberg": peer, "speedup": speedup}
    result.notes += [
        f"Table: {rows:,} rows of (order_id, ts, customer, amount, qty, status), SQLite catalog, built by one append (commit) "
        f"per data file, so the {max(layouts)}-file layout also has {max(layouts)} manifests; each contender gets its own "
        "freshly built copy (built in another process, not timed).",
        f"Batch: {batch // 2:,} distinct existing order_ids drawn uniformly (new values: every file holds some) + "
        f"{batch - batch // 2:,} new ids; key order_id.",
        "icefloe: `TableWriter.commit` in upsert mode (the path an upsert pipeline commits through: exactly-once check, "
        "schema check, dedupe, `icefloe.lake.upsert`): one overwrite snapshot rewriting only files that hold a changed key, "
        f"in {'1 run' if repeat == 1 else f'{repeat} runs, median shown'}. pyiceberg: `Table.upsert(batch, join_cols=['order_id'])`, 1 run.",
        "Both timed from table load to commit, each in a fresh process after imports; the final tables are checked to agree "
        "(row count, distinct keys, sums of order_id/amount/qty, distinct customers, paid count).",
    ]
    return result

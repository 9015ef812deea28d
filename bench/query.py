"""Benchmark: repeated queries on a 2M-row table through `Project.sql` against DuckDB on the same files.

Twenty 1-row lookups (`where order_id = k`, a different k each) and twenty GROUP BYs, through
`Project.sql` (the path `icefloe sql` and the dashboard take: catalog lookup, snapshot check,
scan plan or plan cache, DuckDB views by field id), against DuckDB's `read_parquet` over the same
Parquet files on one reused connection (what you would write by hand with the file list known).
Each contender runs in a fresh process; they alternate, and the median of the repeats is shown.

Run alone: `python -m bench.query [--quick]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, interleaved, log, peak, run_child, temp_dir, write_project

NUMBER = 15
TABLE = "bench.orders"
TARGET_RATIO = 1.2  # icefloe time / DuckDB time, each of the two query kinds
QUERIES = 20
GROUPBY = "select status, count(*) as n, sum(amount) as total, max(qty) as qty from {t} group by status order by status"
LOOKUP = "select order_id, ts, customer, amount, qty, status from {t} where order_id = {k}"


def _keys(rows: int) -> list[int]:
    step = rows // QUERIES
    return [1 + i * step + 7 * i for i in range(QUERIES)]


def build(args: dict[str, Any]) -> dict[str, Any]:
    """The table: `rows` rows in `files` appends (one data file each), in an icefloe project."""
    import pyarrow as pa

    from bench.upsert import SEED, orders
    from icefloe.lake import open_catalog

    root = write_project(Path(args["work"]), source_path="landing", table=TABLE)
    rows, files = args["rows"], args["files"]
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", root)
    catalog.create_namespace("bench")
    data = orders(1, rows, SEED)
    data = data.cast(pa.schema([f.with_nullable(True) for f in data.schema]))
    table = catalog.create_table(TABLE, schema=data.schema)
    per = -(-rows // files)
    for n in range(files):
        table.append(data.slice(n * per, per))
    table = catalog.load_table(TABLE)
    paths = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    return {"seconds": 0.0, "paths": paths}


def _timed(run: Any, sqls: list[str]) -> tuple[list[float], list[Any]]:
    times, answers = [], []
    for sql in sqls:
        t0 = time.perf_counter()
        answers.append(run(sql))
        times.append(time.perf_counter() - t0)
    return times, answers


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    from icefloe.project import Project

    with Project(args["work"]) as project:
        # process start-up, not a query: the catalog's imports and connection (the peer imported
        # DuckDB before its clock too); the table itself is not looked at here
        project.catalog.list_namespaces()
        lookups, found = _timed(lambda s: project.sql(s).to_pylist(), [LOOKUP.format(t=TABLE, k=k) for k in args["keys"]])
        groupbys, groups = _timed(lambda s: project.sql(s).to_pylist(), [GROUPBY.format(t=TABLE)] * QUERIES)
        planned = project.query_engine.planned
    return _result(lookups, groupbys, found, groups, planned=planned)


def duckdb_contender(args: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    source = "read_parquet([" + ", ".join("'" + p + "'" for p in args["paths"]) + "])"
    lookups, found = _timed(lambda s: con.sql(s).to_arrow_table().to_pylist(), [LOOKUP.format(t=source, k=k) for k in args["keys"]])
    groupbys, groups = _timed(lambda s: con.sql(s).to_arrow_table().to_pylist(), [GROUPBY.format(t=source)] * QUERIES)
    con.close()
    return _result(lookups, groupbys, found, groups)


def _result(lookups: list[float], groupbys: list[float], found: list[Any], groups: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "seconds": sum(lookups) + sum(groupbys),
        "lookup_s": sum(lookups),
        "groupby_s": sum(groupbys),
        "lookup_first_ms": lookups[0] * 1000,
        "lookup_median_ms": statistics.median(lookups) * 1000,
        "groupby_first_ms": groupbys[0] * 1000,
        "groupby_median_ms": statistics.median(groupbys) * 1000,
        "answers": [str(r) for r in found] + [str(groups[-1])],
        **extra,
    }


def measure(rows: int, files: int, repeat: int) -> BenchResult:
    result = BenchResult(NUMBER, f"{QUERIES} lookups and {QUERIES} GROUP BYs on a {rows / 1e6:g}M-row table of {files} files")
    log(f"[{NUMBER}] {result.title}")
    work = temp_dir("query-")
    built = run_child("bench.query:build", {"work": str(work), "rows": rows, "files": files}, label="query build")
    args = {"work": str(work), "paths": built["paths"], "keys": _keys(rows)}
    chosen = interleaved(
        {"icefloe": ("bench.query:icefloe_contender", args), "duckdb": ("bench.query:duckdb_contender", args)}, repeat=repeat
    )
    ours, peer = chosen["icefloe"], chosen["duckdb"]
    assert ours["answers"] == peer["answers"], "icefloe and DuckDB answered differently"
    assert all("order_id" in a for a in ours["answers"][:QUERIES]), "a lookup found no row"
    for kind, label in (("lookup", "1-row lookups"), ("groupby", "GROUP BYs")):
        ratio = ours[f"{kind}_s"] / peer[f"{kind}_s"]
        result.row(
            f"{QUERIES} {label}: total", f"{ours[f'{kind}_s'] * 1000:.0f} ms", f"DuckDB read_parquet: {peer[f'{kind}_s'] * 1000:.0f} ms",
            f"{ratio:.2f}x DuckDB's time", f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO,
        )  # fmt: skip
        result.row(
            f"{label}: first / median", f"{ours[f'{kind}_first_ms']:.1f} / {ours[f'{kind}_median_ms']:.1f} ms",
            f"DuckDB: {peer[f'{kind}_first_ms']:.1f} / {peer[f'{kind}_median_ms']:.1f} ms",
        )  # fmt: skip
    result.row("scan plans made by pyiceberg", str(ours["planned"]), "", "", "")
    result.row("peak RSS", peak(ours), f"DuckDB: {peak(peer)}")
    result.row("answers (asserted equal)", f"{QUERIES + 1} compared", "", "", "", True)
    result.notes += [
        f"Table: {rows:,} rows of the bench shape, {files} data files (one pyiceberg append each), SQLite catalog.",
        (
            f"icefloe: one `Project`, `project.sql(...)` {QUERIES} times per kind (catalog lookup and snapshot check every "
            "query; scan planned on a cache miss only; the catalog connection opened before the clock, as DuckDB is imported "
            "before the peer's). DuckDB: one connection, the same SQL over "
            "`read_parquet([the table's files])`, the file list given (not timed)."
        ),
        (
            f"Each contender in a fresh process, alternating, {repeat} run(s) each, the median run shown; totals include the "
            "first query of each kind (icefloe's first plans the scan). The 2 cores are shared with other work: compare the "
            "ratio, measured in the same run, rather than the absolute times."
        ),
    ]
    result.data = {"icefloe": ours, "duckdb": peer}
    return result


def run(quick: bool) -> BenchResult:
    return measure(200_000, 20, 1) if quick else measure(2_000_000, 20, 3)


if __name__ == "__main__":
    from bench.__main__ import print_results

    print_results([run("--quick" in sys.argv)])

"""S3 (moto's server on loopback) -> Iceberg with the warehouse on S3: 2,000 small CSVs and one big
CSV through `Project.run(once=True)` (what `icefloe run --once` runs) with 1 and 2 worker
processes, against a plain boto3 + pyarrow + pyiceberg script doing the same work, in the same run,
interleaved. Ratios printed; peak RSS is each process's ru_maxrss (2 workers: the larger one).

    python -m bench.s3 [--quick] [--small 2000] [--big-mb 1024] [--workers 1,2] [--parallel 1,4] [--repeat 1]

`--quick`: 300 small files and a 64 MB big file, one worker count (1) and both read modes.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    SCHEMA,
    SEED,
    arrow_types,
    log,
    orders_csv_text,
    rss_mb,
    run_child,
    stop_process,
    temp_dir,
    write_orders_csv,
)

KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
S3 = {"region": "us-east-1", "path_style": True}


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


# -- contenders (each in a fresh process, see bench/child.py) -------------------------------------


def icefloe_project(args: dict[str, Any]) -> Path:
    """The project both workers of a run share (written by the driver, before either starts)."""
    root = Path(args["project"]) / f"icefloe-{args['part']}-{args['run']}"
    warehouse = f"s3://{args['warehouse']}/{args['part']}-{args['run']}"
    pipeline = {"read": {"format": "csv", "schema": dict(SCHEMA)}, "write": {"table": "bench.orders"}}
    config = {
        "catalog": "sqlite:///catalog.db",
        "warehouse": warehouse,
        "s3": {"endpoint_url": args["endpoint"], **S3, "parallel": args.get("parallel", 4)},
        "sources": {"landing": {"type": "s3", "bucket": args["bucket"], "prefix": args["part"]}},
        "routes": [{"source": "landing", "pipeline": "orders"}],
        "pipelines": {"orders": pipeline},
    }
    root.mkdir(parents=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))
    return root


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    """One worker: `run --once` on the shared project (every worker lists; the ledger shares the work)."""
    # icefloe before pyarrow, as the `icefloe` command does: it sets MIMALLOC_PURGE_DELAY=0, and
    # pyarrow imported first keeps freed pages (RSS in proportion to the file, not live data)
    import icefloe  # noqa: F401, I001
    import pyiceberg.catalog.sql  # noqa: F401

    import icefloe.engine
    import icefloe.lake.writer
    import icefloe.sources.s3  # noqa: F401
    from icefloe.project import Project

    root = Path(args["root"])
    start_rss = rss_mb()
    began = time.time()
    started = time.perf_counter()
    with Project(root) as project:
        summary = project.run(once=True)
    seconds = time.perf_counter() - started
    ended = time.time()
    out: dict[str, Any] = {"seconds": seconds, "began": began, "ended": ended, "start_rss_mb": start_rss, "committed": summary.committed}
    return out


def _snapshots(project: Any) -> int:
    table = project.runtime.catalog.load_table("bench.orders")
    return len(table.metadata.snapshots)


def icefloe_count(args: dict[str, Any]) -> dict[str, Any]:
    from icefloe.project import Project

    with Project(Path(args["root"])) as project:
        rows = project.sql("select count(*) from bench.orders").column(0)[0].as_py()
        states = sorted({e.state for e in project.ledger.events()})
        return {"seconds": 0.0, "rows": rows, "states": states, "snapshots": _snapshots(project)}


def peer_contender(args: dict[str, Any]) -> dict[str, Any]:
    """List the prefix with boto3, read each object with pyarrow's CSV reader (same types), append
    to a pyiceberg table whose warehouse is on the same S3 (small files: one append per 500)."""
    import boto3
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from pyiceberg.catalog.sql import SqlCatalog

    root = Path(args["project"]) / f"peer-{args['part']}-{args['run']}"
    root.mkdir(parents=True)
    client = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1")
    props = {"s3.endpoint": args["endpoint"], "s3.region": "us-east-1", "s3.access-key-id": "bench", "s3.secret-access-key": "bench"}
    catalog = SqlCatalog("peer", uri=f"sqlite:///{root}/catalog.db", warehouse=f"s3://{args['warehouse']}/peer-{args['part']}-{args['run']}", **props)
    catalog.create_namespace("bench")
    types = arrow_types()
    convert = pacsv.ConvertOptions(column_types=types)
    schema = pa.schema([(name, types[name]) for name in SCHEMA])
    start_rss = rss_mb()
    started = time.perf_counter()
    table = catalog.create_table("bench.orders", schema=schema)
    pending: list[pa.Table] = []
    rows = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=args["bucket"], Prefix=args["part"] + "/"):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=args["bucket"], Key=item["Key"])["Body"]
            if item["Size"] < 64 << 20:
                pending.append(pacsv.read_csv(io.BytesIO(body.read()), convert_options=convert).select(list(SCHEMA)))
                if len(pending) >= 500:
                    table.append(pa.concat_tables(pending))
                    rows += sum(t.num_rows for t in pending)
                    pending = []
                continue
            # a big object: streamed from the one GET, appended every 2M rows (memory bounded)
            reader = pacsv.open_csv(body, read_options=pacsv.ReadOptions(block_size=16 << 20), convert_options=convert)
            chunk: list[pa.RecordBatch] = []
            for batch in reader:
                chunk.append(batch)
                if sum(b.num_rows for b in chunk) >= 2_000_000:
                    table.append(pa.Table.from_batches(chunk).select(list(SCHEMA)))
                    rows += sum(b.num_rows for b in chunk)
                    chunk = []
            if chunk:
                table.append(pa.Table.from_batches(chunk).select(list(SCHEMA)))
                rows += sum(b.num_rows for b in chunk)
    if pending:
        table.append(pa.concat_tables(pending))
        rows += sum(t.num_rows for t in pending)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": catalog.load_table("bench.orders").scan().to_arrow().num_rows, "start_rss_mb": start_rss, "read_rows": rows}


# -- driver ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_process(proc, 5)
    raise RuntimeError("moto server did not start")


def _icefloe_run(base: dict[str, Any], part: str, run: str, workers: int, parallel: int) -> dict[str, Any]:
    """`workers` processes of `run --once` on one project; wall time from the first start to the
    last end (inside the processes, after imports)."""
    from concurrent.futures import ThreadPoolExecutor

    root = icefloe_project({**base, "part": part, "run": run, "parallel": parallel})
    with ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(run_child, "bench.s3:icefloe_contender", {"root": str(root)}, label=f"s3-{run}-{part}-w{n}")
            for n in range(workers)
        ]
        got = [f.result() for f in futures]
    counted = run_child("bench.s3:icefloe_count", {"root": str(root)}, label=f"s3-{run}-{part}-count")
    seconds = max(g["ended"] for g in got) - min(g["began"] for g in got)
    return {"seconds": seconds, "peak_rss_mb": max(g["peak_rss_mb"] for g in got), **{k: counted[k] for k in ("rows", "states", "snapshots")},
            "committed": [g["committed"] for g in got]}  # fmt: skip


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 small files, a 64 MB big one, 1 worker")
    parser.add_argument("--small", type=int, default=None, help="number of small CSVs (20 rows each; default 2000)")
    parser.add_argument("--big-mb", type=int, default=None, help="size of the one big CSV (default 1024; 0: none)")
    parser.add_argument("--workers", default=None, help="worker counts, e.g. 1,2 (default 1,2)")
    parser.add_argument("--parallel", default="1,4", help="s3.parallel values for the big file (1: one streamed GET)")
    parser.add_argument("--repeat", type=int, default=1)
    opts = parser.parse_args()
    small_n = opts.small if opts.small is not None else (300 if opts.quick else 2000)
    big_mb = opts.big_mb if opts.big_mb is not None else (64 if opts.quick else 1024)
    workers = [int(w) for w in (opts.workers or ("1" if opts.quick else "1,2")).split(",")]
    parallels = [int(p) for p in opts.parallel.split(",")]
    os.environ.update(KEYS)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = _moto(port)
    try:
        work = temp_dir("s3-")
        client = _client(endpoint)
        for bucket in ("bench-src", "bench-wh"):
            client.create_bucket(Bucket=bucket)
        rng = random.Random(SEED + 30)
        small_bytes = 0
        for i in range(small_n):
            body = orders_csv_text(i * 20, 20, rng).encode()
            small_bytes += len(body)
            client.put_object(Bucket="bench-src", Key=f"small/day={i % 10}/f{i:05d}.csv", Body=body)
        big_bytes = 0
        if big_mb:
            rows_per_mb = 1e6 / 55
            big = work / "big.csv"
            write_orders_csv(big, 10_000_000, int(big_mb * rows_per_mb), rng)
            big_bytes = big.stat().st_size
            client.upload_file(str(big), "bench-src", "big/orders.csv")
            big.unlink()
        log(f"data: {small_n} small CSVs ({small_bytes / 1e6:.1f} MB) and one of {big_bytes / 1e6:.0f} MB on S3; {_load()}")
        base = {"endpoint": endpoint, "bucket": "bench-src", "warehouse": "bench-wh", "project": str(work)}
        # (part, contender name) -> best run
        results: dict[tuple[str, str], dict[str, Any]] = {}
        parts = [("small", small_n, small_bytes)] + ([("big", 1, big_bytes)] if big_mb else [])
        for part, _, _ in parts:
            contenders: list[tuple[str, int, int]] = [("peer", 0, 0)]
            for w in workers:
                for p in parallels if part == "big" else [4]:
                    contenders.append((f"icefloe-w{w}" + (f"-p{p}" if part == "big" else ""), w, p))
            for i in range(opts.repeat):
                for name, w, p in contenders:  # interleaved: peer, then each icefloe setting, each round
                    try:
                        if name == "peer":
                            got = run_child("bench.s3:peer_contender", {**base, "part": part, "run": f"peer-{i}"}, label=f"s3-peer-{part}")
                        else:
                            got = _icefloe_run(base, part, f"{name}-{i}", w, p)
                    except RuntimeError as exc:  # said, and the rest still runs (moto can fail big uploads)
                        log(f"  {part}: {name} run {i + 1} FAILED: {str(exc).splitlines()[0]}")
                        continue
                    extra = f", {got['snapshots']} snapshots, states {got['states']}" if "snapshots" in got else ""
                    log(f"  {part}: {name} run {i + 1}: {got['seconds']:.2f}s, {got['rows']:,} rows, peak RSS {got['peak_rss_mb']:.0f} MB{extra}; {_load()}")
                    best = results.get((part, name))
                    if best is None or got["seconds"] < best["seconds"]:
                        results[(part, name)] = got
        print("\nBench s3: S3 (moto, loopback) -> Iceberg (warehouse on the same S3, SQLite catalog and ledger)")
        print(f"Shared machine, {_load()} at the end: absolute numbers are noisy, the ratios are from one run.\n")
        print(f"| {'measure':<44} | {'icefloe':>10} | {'boto3+pyarrow+pyiceberg':>24} | {'ratio':>7} |")
        print(f"|{'-' * 46}|{'-' * 12}|{'-' * 26}|{'-' * 9}|")
        for part, count, size in parts:
            peer = results.get((part, "peer"))
            if peer is None:
                print(f"| {part}: no ratio, the peer failed (see the log above) |")
                continue
            label = f"{count:,} small CSVs" if part == "small" else f"1 CSV of {size / 1e6:.0f} MB"
            for (p2, name), ours in results.items():
                if p2 != part or name == "peer":
                    continue
                assert ours["rows"] == peer["rows"], (name, ours["rows"], peer["rows"])
                setting = name.removeprefix("icefloe-").replace("w", "", 1) + " worker(s)"
                if part == "big":
                    w, p = name.removeprefix("icefloe-w").split("-p")
                    setting = f"{w} worker(s), parallel {p}"
                rows = [("files/s", count / ours["seconds"], count / peer["seconds"], "{:.1f}")] if part == "small" else []
                rows += [
                    ("MB/s", size / 1e6 / ours["seconds"], size / 1e6 / peer["seconds"], "{:.1f}"),
                    ("peak RSS MB", ours["peak_rss_mb"], peer["peak_rss_mb"], "{:.0f}"),
                ]
                for measure, a, b, fmt in rows:
                    print(f"| {label + ', ' + setting + ': ' + measure:<44} | {fmt.format(a):>10} | {fmt.format(b):>24} | {a / b:>6.2f}x |")
                print(f"| {label + ', ' + setting + ': snapshots':<44} | {ours['snapshots']:>10} | {'':>24} |         |")
            print(f"| {label + ': rows (equal, asserted)':<44} | {peer['rows']:>10,} | {peer['rows']:>24,} |         |")
        print("\nicefloe states:", {f"{p}/{n}": r["states"] for (p, n), r in results.items() if n != "peer"})
    finally:
        stop_process(moto, 10)


if __name__ == "__main__":
    main()

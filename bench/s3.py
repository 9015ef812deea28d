"""S3 (moto's server on loopback) -> Iceberg with the warehouse on S3: 2,000 small CSVs and one big
CSV through `Project.run(once=True)` (what `icefloe run --once` runs), against a plain boto3 +
pyarrow + pyiceberg script doing the same work, in the same run. Ratios printed.

    python -m bench.s3 [--small 2000] [--big-mb 256] [--repeat 1]
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


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    import pyiceberg.catalog.sql  # noqa: F401

    import icefloe.engine
    import icefloe.lake.writer
    import icefloe.sources.s3  # noqa: F401
    from icefloe.project import Project

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
    start_rss = rss_mb()
    started = time.perf_counter()
    with Project(root) as project:
        project.run(once=True)
    seconds = time.perf_counter() - started
    with Project(root) as project:
        rows = project.sql("select count(*) from bench.orders").column(0)[0].as_py()
        states = sorted({e.state for e in project.ledger.events()})
    return {"seconds": seconds, "rows": rows, "states": states, "start_rss_mb": start_rss}


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
            body = client.get_object(Bucket=args["bucket"], Key=item["Key"])["Body"].read()
            pending.append(pacsv.read_csv(io.BytesIO(body), convert_options=convert).select(list(SCHEMA)))
            if len(pending) >= 500:
                table.append(pa.concat_tables(pending))
                rows += sum(t.num_rows for t in pending)
                pending = []
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=2000, help="number of small CSVs (20 rows each)")
    parser.add_argument("--big-mb", type=int, default=256, help="size of the one big CSV")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1, help="also run the big file with s3.parallel: N (0: skip)")
    opts = parser.parse_args()
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
        for i in range(opts.small):
            body = orders_csv_text(i * 20, 20, rng).encode()
            small_bytes += len(body)
            client.put_object(Bucket="bench-src", Key=f"small/day={i % 10}/f{i:05d}.csv", Body=body)
        rows_per_mb = 1e6 / 55
        big = work / "big.csv"
        write_orders_csv(big, 10_000_000, int(opts.big_mb * rows_per_mb), rng)
        big_bytes = big.stat().st_size
        client.upload_file(str(big), "bench-src", "big/orders.csv")
        big.unlink()
        log(f"data: {opts.small} small CSVs ({small_bytes / 1e6:.1f} MB) and one of {big_bytes / 1e6:.0f} MB on S3")
        base = {"endpoint": endpoint, "bucket": "bench-src", "warehouse": "bench-wh", "project": str(work)}
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for part in ("small", "big"):
            for i in range(opts.repeat):
                contenders = [("icefloe", "bench.s3:icefloe_contender", 4), ("peer", "bench.s3:peer_contender", 0)]
                if part == "big" and opts.parallel:
                    contenders.append((f"icefloe-parallel-{opts.parallel}", "bench.s3:icefloe_contender", opts.parallel))
                for name, target, parallel in contenders:
                    args = {**base, "part": part, "run": f"{name}-{i}", "parallel": parallel}
                    try:
                        got = run_child(target, args, label=f"s3-{name}-{part}")
                    except RuntimeError as exc:  # said, and the rest still runs (moto can fail big uploads)
                        log(f"  {part}: {name} run {i + 1} FAILED: {str(exc).splitlines()[0]}")
                        results.setdefault(part, {})
                        continue
                    log(f"  {part}: {name} run {i + 1}: {got['seconds']:.2f}s, {got['rows']:,} rows, peak RSS {got['peak_rss_mb']:.0f} MB")
                    best = results.setdefault(part, {}).get(name)
                    if best is None or got["seconds"] < best["seconds"]:
                        results[part][name] = got
        print("\nBench s3: S3 (moto, loopback) -> Iceberg (warehouse on the same S3, SQLite catalog)")
        print("2 cores shared with 7 other helpers' work: absolute numbers are noisy, the ratios are from one run.\n")
        print(f"| {'measure':<34} | {'icefloe':>14} | {'boto3+pyarrow+pyiceberg':>24} | {'ratio':>7} |")
        print(f"|{'-' * 36}|{'-' * 16}|{'-' * 26}|{'-' * 9}|")
        for part, count, size in (("small", opts.small, small_bytes), ("big", 1, big_bytes)):
            if "icefloe" not in results[part] or "peer" not in results[part]:
                print(f"| {part}: no ratio, a contender failed (see the log above) |")
                continue
            ours, peer = results[part]["icefloe"], results[part]["peer"]
            assert ours["rows"] == peer["rows"], (ours["rows"], peer["rows"])
            label = f"{count:,} small CSVs" if part == "small" else f"1 CSV of {size / 1e6:.0f} MB"
            rows = [
                ("files/s", count / ours["seconds"], count / peer["seconds"], "{:.1f}"),
                ("MB/s", size / 1e6 / ours["seconds"], size / 1e6 / peer["seconds"], "{:.1f}"),
                ("seconds", ours["seconds"], peer["seconds"], "{:.2f}"),
                ("peak RSS MB", ours["peak_rss_mb"], peer["peak_rss_mb"], "{:.0f}"),
            ]
            for measure, a, b, fmt in rows:
                print(f"| {label + ': ' + measure:<34} | {fmt.format(a):>14} | {fmt.format(b):>24} | {a / b:>6.2f}x |")
            print(f"| {label + ': rows (equal, asserted)':<34} | {ours['rows']:>14,} | {peer['rows']:>24,} |         |")
            for name, other in results[part].items():
                if name.startswith("icefloe-parallel-"):
                    assert other["rows"] == peer["rows"]
                    n = name.rsplit("-", 1)[1]
                    print(f"| {label + f': s3.parallel {n}, MB/s':<34} | {size / 1e6 / other['seconds']:>14.1f} | "
                          f"{size / 1e6 / peer['seconds']:>24.1f} | {peer['seconds'] / other['seconds']:>6.2f}x |")
                    print(f"| {label + f': s3.parallel {n}, peak RSS MB':<34} | {other['peak_rss_mb']:>14.0f} | "
                          f"{peer['peak_rss_mb']:>24.0f} | {other['peak_rss_mb'] / peer['peak_rss_mb']:>6.2f}x |")
        print("\nicefloe: states", {p: r["icefloe"]["states"] for p, r in results.items() if "icefloe" in r})
    finally:
        stop_process(moto, 10)


if __name__ == "__main__":
    main()

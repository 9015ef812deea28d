"""A /metrics scrape against a ledger of 1,000,000 events, SQLite and PostgreSQL.

    python -m bench.metrics_scrape [--events 1000000] [--backends sqlite,postgresql] [--repeat 20]

Each backend gets a project (`icefloe init`) whose ledger `bench.bigledger` fills (90% committed,
the rest queued, dead, retrying, running, unrouted: 60,000 pending and 30,000 dead events at
1,000,000) and a /metrics server started by `serve_metrics`, the function `icefloe run
--metrics-port` starts; each timed scrape is an HTTP GET of /metrics over loopback, the whole
body read. The peer, timed in turn with it in the same loop, is the ledger read `icefloe status`
makes (`Ledger.counts()`: a GROUP BY over every event), what a scrape would cost without the
indexed query. Prints the median and p95 of each and the ratio scrape/peer, and the fastest
scrape (what one costs when the machine gives it a core at once). `--keep DIR` fills the
ledgers once and reuses them (filling 1,000,000 events takes minutes).

PostgreSQL: 127.0.0.1:5432, user postgres (trust); a database `icefloe_bench_scrape` is made
again each run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import time
import urllib.request
from pathlib import Path

import yaml

from bench.bigledger import fill, fill_postgres
from bench.common import log, percentile, temp_dir
from icefloe import Project
from icefloe.observe.metrics import serve_metrics
from icefloe.scaffold import init_project

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DB = "icefloe_bench_scrape"


def _sqlite(root: Path, events: int) -> None:
    fill(root / ".icefloe" / "ledger.db", events)


def _postgres(root: Path, events: int) -> None:
    import psycopg

    with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        admin.execute(f"CREATE DATABASE {PG_DB}")
    uri = f"{PG_SERVER}/{PG_DB}"
    fill_postgres(uri, root, events)  # the schema as the code under test makes it, then COPY
    with psycopg.connect(uri, autocommit=True) as db:
        db.execute("VACUUM ANALYZE events")  # as autovacuum leaves a table that took a million rows
    config_path = root / "icefloe.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["ledger"] = uri
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def _scrape(port: int) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        body = reply.read().decode()
    return time.perf_counter() - started, body


def bench(backend: str, events: int, repeat: int, work: Path) -> tuple[list[float], list[float], float]:
    root = work / backend
    filled = root / ".bench-filled"
    if not (filled.exists() and filled.read_text() == str(events)):  # --keep: filled by an earlier run
        shutil.rmtree(root, ignore_errors=True)
        init_project(root)
        started = time.perf_counter()
        (_sqlite if backend == "sqlite" else _postgres)(root, events)
        filled.write_text(str(events))
        log(f"{backend}: {events:,} events filled in {time.perf_counter() - started:.0f} s")
    scrapes: list[float] = []
    peers: list[float] = []
    with Project(root) as project:
        server, _ = serve_metrics(project.runtime, 0)
        try:
            _scrape(server.server_port)  # the connection made, the code paths warm
            for _ in range(repeat):
                took, body = _scrape(server.server_port)
                scrapes.append(took)
                started = time.perf_counter()
                project.ledger.counts()
                peers.append(time.perf_counter() - started)
        finally:
            server.shutdown()
            server.server_close()
    pending = re.search(r'icefloe_backlog_events\{pipeline="orders"\} ([\d.e+]+)', body)
    assert pending and float(pending[1]) > 0, body[:2000]
    query = re.search(r"icefloe_ledger_scrape_duration_seconds ([\d.e+-]+)", body)
    return scrapes, peers, float(query[1]) if query else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="fill the ledgers here once, reuse them next time")
    args = parser.parse_args()
    work = args.keep if args.keep is not None else temp_dir("scrape-")
    results = {b: bench(b, args.events, args.repeat, work) for b in args.backends.split(",")}
    print(f"/metrics scrape, {args.events:,} events in the ledger, {args.repeat} scrapes each, HTTP over loopback")
    print("(2 shared cores, other helpers' jobs running: medians and the ratio in one run)")
    for backend, (scrapes, peers, query) in results.items():
        s, p = statistics.median(scrapes), statistics.median(peers)
        print(
            f"  {backend:10}: scrape median {s * 1000:.1f} ms, p95 {percentile(scrapes, 95) * 1000:.1f} ms,"
            f" min {min(scrapes) * 1000:.1f} ms"
            f" (its ledger query {query * 1000:.1f} ms);  peer `status` counts() median {p * 1000:.1f} ms;"
            f"  ratio scrape/peer {s / p:.3f}"
        )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

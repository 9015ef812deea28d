"""NATS JetStream -> Iceberg: records/s and publish -> queryable latency, against a plain consumer.

`python -m bench.nats [--quick]` (--quick: 200 x 50 records, 100 latency messages, one round). Needs NATS with JetStream on 127.0.0.1:4222 (or ICEFLOE_BENCH_NATS).

- Burst: MESSAGES messages of RECORDS NDJSON records each wait in a fresh stream; `icefloe run
  --once` takes them (pull, batch, commit, ack). Peer, in the same run, on a second stream with the
  same messages: a plain script with nats-py's pull consumer, `pyarrow.json` and pyiceberg's
  `table.append` per fetched batch, acking after the append (the same durability: nothing is
  acked before it is committed), into the same schema.
- Latency: a running `icefloe run` while messages are published at RATE per second; each record
  carries its publish time; latency = the ledger's committed_at of its event - that time. The peer
  runs the same way (a running script; latency = when its append returned - the publish time).
- Rounds alternate which side goes first; the load average is printed with every number.
Both verify the row counts afterwards (nothing lost, nothing doubled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.common import PYTHON, ROOT, BenchResult, log, percentile, stop_process, temp_dir

URL = os.environ.get("ICEFLOE_BENCH_NATS", "nats://127.0.0.1:4222")
# `--commit-wait`: the pipeline's batch.max_wait (the commit window; default: icefloe's own)
COMMIT_WAIT: str | None = None
SCHEMA = {"id": "long", "customer": "string", "amount": "double", "pub_ts": "double"}


def _message(first: int, records: int, stamp: bool) -> bytes:
    now = time.time() if stamp else 0.0
    return b"".join(
        json.dumps({"id": i, "customer": f"c{i % 977}", "amount": i * 0.25, "pub_ts": now}, separators=(",", ":")).encode() + b"\n"
        for i in range(first, first + records)
    )


async def _stream(js: Any, name: str) -> None:
    try:
        await js.delete_stream(name)
    except Exception:  # noqa: BLE001 - not there yet
        pass
    await js.add_stream(name=name, subjects=[f"{name.lower()}.in"])


def publish(name: str, messages: int, records: int, *, rate: float | None = None, fresh: bool = True) -> None:
    async def go() -> None:
        import nats

        nc = await nats.connect(URL)
        js = nc.jetstream()
        if fresh:
            await _stream(js, name)
        start = time.perf_counter()
        for n in range(messages):
            if rate:
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await js.publish(f"{name.lower()}.in", _message(n * records, records, stamp=rate is not None))
        await nc.close()

    asyncio.run(go())


def project(root: Path, stream: str, max_messages: int) -> Path:
    config = {
        "sources": {"bus": {"type": "nats", "nats": {"url": URL, "stream": stream, "max_messages": max_messages, "max_wait": "50ms"}}},
        "routes": [{"source": "bus", "match": "**", "pipeline": "orders"}],
        "pipelines": {"orders": {"read": {"format": "ndjson", "schema": SCHEMA}, "write": {"table": "bench.nats"},
                                 **({"batch": {"max_wait": COMMIT_WAIT}} if COMMIT_WAIT else {})}},
        "maintenance": {"enabled": False},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def icefloe_burst(stream: str, messages: int, records: int, batch: int) -> dict[str, Any]:
    root = project(temp_dir("nats-burst-"), stream, batch)
    publish(stream, messages, records)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-m", "icefloe", "run", "--once", "-p", str(root)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - t0
    from icefloe import Project

    with Project(root) as p:
        count, distinct = p.sql("select count(*), count(distinct id) from bench.nats").to_pylist()[0].values()
    return {"seconds": seconds, "rows": count, "distinct": distinct}


PEER = r'''
import asyncio, io, json, sys, time
import pyarrow as pa, pyarrow.json as pj
from pyiceberg.catalog.sql import SqlCatalog
url, stream, batch, expected, warehouse, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
schema = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64()), ("pub_ts", pa.float64())])
catalog = SqlCatalog("peer", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
catalog.create_namespace_if_not_exists("bench")
table = catalog.create_table_if_not_exists("bench.peer", schema=schema)
latency = []
async def main():
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig
    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe("", durable="peer", stream=stream,
                                              config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=100_000))
    print("ready", flush=True)
    done = 0
    while done < expected:
        try:
            msgs = await sub.fetch(batch, timeout=wait)
        except Exception:
            continue
        if not any(m.data for m in msgs):
            continue
        data = pj.read_json(io.BytesIO(b"".join(m.data for m in msgs)), parse_options=pj.ParseOptions(explicit_schema=schema))
        table.append(data)  # committed (queryable) when it returns; acked only after
        now = time.time()
        latency.extend((now - ts) * 1000 for ts in data.column("pub_ts").to_pylist() if ts)
        for m in msgs:
            await m.ack()
        done += data.num_rows
    await nc.flush(); await nc.close()
t0 = time.perf_counter(); asyncio.run(main())
print(json.dumps({"seconds": time.perf_counter() - t0, "latency": latency}))
'''


def _peer_rows(folder: Path) -> dict[str, Any]:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("peer", uri=f"sqlite:///{folder}/catalog.db", warehouse=f"file://{folder}")
    rows = catalog.load_table("bench.peer").scan().to_arrow()
    return {"rows": rows.num_rows, "distinct": len(set(rows.column("id").to_pylist()))}


def peer_burst(stream: str, messages: int, records: int, batch: int) -> dict[str, Any]:
    folder = temp_dir("nats-peer-")
    publish(stream, messages, records)
    t0 = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", PEER, URL, stream, str(batch), str(messages * records), str(folder), "1"],
                         check=True, capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    inner = json.loads(out.stdout.splitlines()[-1])
    return {"seconds": seconds, "inner_seconds": inner["seconds"], **_peer_rows(folder)}


def peer_latency(stream: str, messages: int, records: int, rate: float) -> dict[str, Any]:
    """The peer running before the messages come (its start is not measured, as icefloe's is not),
    fetching what is there every 50 ms like icefloe's max_wait."""
    folder = temp_dir("nats-peer-latency-")
    publish(stream, 0, records)
    proc = subprocess.Popen([PYTHON, "-c", PEER, URL, stream, "100", str(messages * records), str(folder), "0.05"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the peer did not start")
    time.sleep(0.5)
    publish(stream, messages, records, rate=rate, fresh=False)
    out, _ = proc.communicate(timeout=300)
    lat = json.loads(out.splitlines()[-1])["latency"]
    got = _peer_rows(folder)
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), **got}


def _wait_for_consumer(stream: str, worker: subprocess.Popen[bytes]) -> None:
    async def exists() -> bool:
        import nats

        nc = await nats.connect(URL)
        try:
            await nc.jetstream().consumer_info(stream, "icefloe")
            return True
        except Exception:  # noqa: BLE001 - not created yet
            return False
        finally:
            await nc.close()

    deadline = time.time() + 120
    while not asyncio.run(exists()):
        if worker.poll() is not None or time.time() > deadline:
            raise RuntimeError("the worker did not start its consumer")
        time.sleep(0.2)


def latency_run(stream: str, messages: int, records: int, rate: float) -> dict[str, Any]:
    root = project(temp_dir("nats-latency-"), stream, 100)
    publish(stream, 0, records)  # the stream exists before the worker starts
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    with open(root / "worker.log", "wb") as out:
        worker = subprocess.Popen([PYTHON, "-m", "icefloe", "run", "-p", str(root)], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_consumer(stream, worker)  # the worker's start (imports, ledger, consumer) is not measured
        time.sleep(0.5)
        publish(stream, messages, records, rate=rate, fresh=False)
        ledger = root / ".icefloe" / "ledger.db"
        deadline = time.time() + 120
        while True:
            db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
            pending = db.execute("SELECT count(*) FROM events WHERE state != 'committed'").fetchone()[0]
            committed = db.execute("SELECT count(*) FROM events WHERE state = 'committed'").fetchone()[0]
            db.close()
            from icefloe import Project

            if committed and not pending:
                with Project(root) as p:
                    if p.sql("select count(*) from bench.nats").to_pylist()[0]["count_star()"] >= messages * records:
                        break
            if time.time() > deadline or worker.poll() is not None:
                raise RuntimeError(f"not all committed; log:\n{(root / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.2)
    finally:
        stop_process(worker, 30)
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    committed_at = dict(db.execute("SELECT id, committed_at FROM events").fetchall())
    landed_at = dict(db.execute("SELECT id, landed_at FROM events").fetchall())
    db.close()
    from icefloe import Project

    with Project(root) as p:
        rows = p.sql("select _icefloe_event as e, pub_ts, id from bench.nats").to_pylist()
    lat = [(committed_at[r["e"]] - r["pub_ts"]) * 1000 for r in rows]
    land = [(landed_at[r["e"]] - r["pub_ts"]) * 1000 for r in rows]
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "land_p50": percentile(land, 50), "rows": len(rows), "distinct": len({r["id"] for r in rows}),
            "events": len(committed_at)}  # fmt: skip


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(quick: bool) -> BenchResult:
    messages, records, batch = (200, 50, 100) if quick else (2000, 100, 100)
    lat_messages, rate = (100, 50.0) if quick else (600, 100.0)
    rounds = 1 if quick else 2
    result = BenchResult(14, f"NATS JetStream -> Iceberg: {messages:,} messages x {records} NDJSON records")
    log(f"[14] {result.title}; load {_load()}; commit window {COMMIT_WAIT or 'default'}")
    total = messages * records
    burst: dict[str, list[dict[str, Any]]] = {"icefloe": [], "peer": []}
    latency: dict[str, list[dict[str, Any]]] = {"icefloe": [], "peer": []}
    loads: list[str] = [_load()]
    for n in range(rounds):
        # interleaved (A B, then B A): the machine's load drifts, each side sees the same drift
        order = [("icefloe", icefloe_burst), ("peer", peer_burst)]
        for name, fn in order if n % 2 == 0 else order[::-1]:
            got = fn(f"BENCH{name[0].upper()}{uuid.uuid4().hex[:6].upper()}", messages, records, batch)
            assert got["rows"] == got["distinct"] == total, f"{name}: {got['rows']} rows, {got['distinct']} distinct, expected {total}"
            got["load"] = _load()
            burst[name].append(got)
            log(f"  burst {name}: {got}")
        lat_order = [("icefloe", latency_run), ("peer", peer_latency)]
        for name, measure in lat_order if n % 2 == 0 else lat_order[::-1]:
            got = measure(f"BENCHL{name[0].upper()}{uuid.uuid4().hex[:6].upper()}", lat_messages, 10, rate)
            assert got["rows"] == got["distinct"] == lat_messages * 10, f"{name} latency: {got}"
            got["load"] = _load()
            latency[name].append(got)
            log(f"  latency {name}: { {k: v for k, v in got.items() if k != 'latency'} }")
        loads.append(_load())
    ours = min(r["seconds"] for r in burst["icefloe"])
    theirs = min(r["seconds"] for r in burst["peer"])
    result.row("records/s, burst (run --once vs peer script), best round", f"{total / ours:,.0f}", f"{total / theirs:,.0f}",
               f"{theirs / ours:.2f}x")  # fmt: skip
    for q in ("p50", "p99"):
        a = statistics.median(r[q] for r in latency["icefloe"])
        b = statistics.median(r[q] for r in latency["peer"])
        result.row(f"publish -> queryable {q}, {rate:.0f} msg/s, running consumer", f"{a:.0f} ms", f"{b:.0f} ms", f"{a / b:.2f}x")
    land = statistics.median(r["land_p50"] for r in latency["icefloe"])
    result.row("publish -> landed in the ledger p50 (icefloe)", f"{land:.0f} ms")
    result.row("load average (1/5/15 min) at the start and after each round", " | ".join(loads))
    result.notes += [
        f"Burst: {messages:,} messages wait in a fresh stream; `icefloe run --once` (a subprocess, imports included) "
        f"pulls them in batches of {batch}, commits each batch as one event and acks after the commit. The peer "
        "(a subprocess, imports included) fetches the same batches with nats-py, parses them with pyarrow.json and "
        "appends each to a pyiceberg table (SQLite catalog), acking after the append. Both tables are counted afterwards.",
        f"Latency: a running consumer on each side (its start not measured); {lat_messages} messages of 10 records "
        f"published at {rate:.0f}/s, each record stamped with its publish time; latency = the commit time of the "
        "record's batch (icefloe: the ledger's committed_at, written after the Iceberg commit; peer: when "
        "table.append returned) - its publish time. Maintenance off. Rounds interleaved; the burst reports the "
        "best round, the latency the median of the rounds.",
        "Ratios: burst = peer seconds / icefloe seconds (above 1: icefloe faster); latency = icefloe / peer (below 1: icefloe faster).",
    ]
    result.data = {"burst": burst, "latency": latency, "loads": loads}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--commit-wait", help="the pipeline's batch.max_wait, e.g. 50ms (default: icefloe's 500ms)")
    args = parser.parse_args()
    COMMIT_WAIT = args.commit_wait
    outcome = run(args.quick)
    for row in outcome.rows:
        print(" | ".join(row.values()))

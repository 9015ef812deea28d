"""Benchmark 12: the HTTP ingest API under load (`icefloe serve`, records posted as NDJSON).

A load generator (asyncio, raw HTTP/1.1 on keep-alive connections, so it costs the shared CPUs
little) posts 1,000-row NDJSON bodies to `POST /v1/records/orders` of a running `icefloe serve`
(its worker in a child process, the default) at a fixed rate, open loop: request i is due at
t0 + i/rate and its latency counts from then, so a server that falls behind is not hidden by a
generator that waits for it (coordinated omission). Two phases: answers at 202 (durable on the
source and in the ledger), then `?wait=commit` answers at 200 (committed to Iceberg). Afterwards
every row is counted in the table: none lost, none doubled.

Peer: the same generator against a minimal Starlette app on the same uvicorn that only writes
each body to a file and fsyncs it (file and folder) before answering 202: the floor of "HTTP +
durable bytes" on this machine, without parsing, the ledger or a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import PYTHON, ROOT, SCHEMA, SEED, BenchResult, log, percentile, stop_process, temp_dir

TOKEN = "ifl_bench_http_token"
ROWS = 1000
TARGET_RATE, TARGET_P99_MS = 200.0, 50.0
CONNECTIONS = 64
STATUSES = ("new", "paid", "shipped", "returned")


def _body(first_id: int, rng: random.Random) -> bytes:
    lines = []
    for order_id in range(first_id, first_id + ROWS):
        cents = rng.randrange(100, 5_000_000)
        lines.append(
            f'{{"order_id":{order_id},"ts":"2026-11-{order_id % 28 + 1:02d} 10:{order_id % 60:02d}:00",'
            f'"customer":"cust{rng.randrange(100_000):05d}","amount":"{cents // 100}.{cents % 100:02d}",'
            f'"qty":{rng.randrange(1, 20)},"status":"{STATUSES[rng.randrange(4)]}"}}'
        )
    return ("\n".join(lines) + "\n").encode()


def _drain(root: Path, timeout: float = 600) -> float:
    """Until the worker has no pending event (the backlog of a phase is not the next one's); seconds."""
    started = time.time()
    db = sqlite3.connect(f"file:{root / '.icefloe' / 'ledger.db'}?mode=ro", uri=True, timeout=30)
    try:
        while time.time() - started < timeout:
            if not db.execute("SELECT count(*) FROM events WHERE state IN ('queued', 'retrying', 'running')").fetchone()[0]:
                break
            time.sleep(0.1)
    finally:
        db.close()
    return time.time() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _project(root: Path, port: int) -> Path:
    from icefloe.web.auth import hash_token

    config = {
        "sources": {"landing": {"type": "folder", "path": "landing"}},
        "routes": [],
        "pipelines": {"orders": {"read": {"format": "ndjson", "schema": dict(SCHEMA)}, "write": {"table": "bench.http"}}},
        "serve": {"port": port, "tokens": [{"name": "bench", "hash": hash_token(TOKEN), "scopes": ["ingest", "read"]}],
                  "ingest": {"max_backlog": 100_000}},
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


# -- the load generator ----------------------------------------------------------------------------
async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> tuple[int, bytes]:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def _load(port: int, path: str, bodies: list[bytes], rate: float) -> dict[str, Any]:
    """Post every body once, request i due at t0 + i/rate; latency from when it was due."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answers: list[dict[str, Any]] = []
    t0 = time.perf_counter() + 0.2

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                i = queue.get_nowait()
                due = t0 + i / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                status, payload = await _request(reader, writer, path, bodies[i])
                latencies.append((time.perf_counter() - due) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status in (200, 202):
                    answers.append(json.loads(payload))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(min(CONNECTIONS, len(bodies)))))
    elapsed = time.perf_counter() - t0
    return {"latencies": latencies, "statuses": statuses, "answers": answers, "seconds": elapsed, "rate": len(bodies) / elapsed}


def _wait_up(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}); log:\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on {port}; log:\n{log_path.read_text()[-3000:]}")


def _start(args: list[str], port: int, root: Path, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    log_path = root / f"{name}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([PYTHON, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait_up(port, proc, log_path)
    return proc


def _start_worker(root: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    with open(root / "worker.log", "wb") as out:
        return subprocess.Popen([PYTHON, "-m", "icefloe", "run", "-p", str(root)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _summary(run: dict[str, Any]) -> dict[str, float]:
    lat = run["latencies"]
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat), "rate": run["rate"]}


# -- the peer server -----------------------------------------------------------------------------
def _peer_main(port: int, folder: Path) -> None:
    """The peer: uvicorn + Starlette, each body written to its own file and fsynced, then 202."""
    import uuid

    import uvicorn
    from anyio import to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    folder.mkdir(parents=True, exist_ok=True)

    def write(body: bytes) -> str:
        name = uuid.uuid4().hex
        with open(folder / name, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return name

    async def post(request: Request) -> JSONResponse:
        name = await to_thread.run_sync(write, await request.body())
        return JSONResponse({"events": [{"id": name}]}, status_code=202)

    app = Starlette(routes=[Route("/v1/records/{pipeline}", post, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the run -------------------------------------------------------------------------------------
def _verify(root: Path, requests: int) -> dict[str, Any]:
    from icefloe.project import Project

    with Project(root) as project:
        deadline = time.time() + 300
        while project.ledger.pending_count() and time.time() < deadline:
            time.sleep(0.2)
        rows = project.sql("SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM bench.http").to_pylist()[0]
        states: dict[str, int] = {}
        for e in project.ledger.events():
            states[e.state] = states.get(e.state, 0) + 1
    return {"rows": rows["n"], "distinct": rows["d"], "expected": requests * ROWS, "states": states}


def bench(seconds: float, rate: float, commit_rate: float, commit_seconds: float, keep: bool = False) -> BenchResult:
    result = BenchResult(12, f"HTTP ingest: {ROWS:,}-row NDJSON posts at {rate:.0f} req/s for {seconds:.0f} s, then ?wait=commit")
    log(f"[12] {result.title}")
    rng = random.Random(SEED + 12)
    n202, ncommit = int(seconds * rate), int(commit_seconds * commit_rate)
    bodies = [_body(1 + i * ROWS, rng) for i in range(n202 + ncommit)]
    log(f"  {len(bodies)} bodies of {len(bodies[0]) / 1e3:.0f} kB generated")

    # the peer first: the same bodies at the same rate, a fresh server
    peer_dir = temp_dir("http-peer-")
    port = _free_port()
    peer = _start(["-m", "bench.http", "--peer-server", str(port), str(peer_dir / "bodies")], port, peer_dir, "peer")
    try:
        peer_run = asyncio.run(_load(port, "/v1/records/orders", bodies[:n202], rate))
    finally:
        stop_process(peer, 30)
    peer_s = _summary(peer_run)
    loads = {"peer": _loadavg()}
    log(f"  peer (load {loads['peer']:.1f}): {peer_s['rate']:.0f} req/s, p50 {peer_s['p50']:.1f} ms, p99 {peer_s['p99']:.1f} ms, {peer_run['statuses']}")

    root = _project(temp_dir("http-"), port := _free_port())
    server = _start(["-m", "icefloe", "serve", "-p", str(root)], port, root, "serve")
    try:
        # one warm-up post creates the table (not counted)
        warm = asyncio.run(_load(port, "/v1/records/orders?wait=commit", [_body(10**9, rng)], 1.0))
        log(f"  warm-up (table creation): {warm['statuses']} in {warm['latencies'][0]:.0f} ms")
        accepted = asyncio.run(_load(port, "/v1/records/orders", bodies[:n202], rate))
        s202 = _summary(accepted)
        loads["202"] = _loadavg()
        log(f"  202 phase (load {loads['202']:.1f}): {s202['rate']:.0f} req/s, p50 {s202['p50']:.1f} ms, p99 {s202['p99']:.1f} ms, {accepted['statuses']}")
        drained = _drain(root)
        log(f"  the worker committed the 202 phase's backlog {drained:.1f} s after its last answer")
        committed = asyncio.run(_load(port, "/v1/records/orders?wait=commit", bodies[n202:], commit_rate))
        scommit = _summary(committed)
        loads["commit"] = _loadavg()
        log(f"  commit phase (load {loads['commit']:.1f}): {scommit['rate']:.0f} req/s, p50 {scommit['p50']:.0f} ms, p99 {scommit['p99']:.0f} ms, {committed['statuses']}")
    finally:
        stop_process(server, 60)
    check = _verify(root, len(bodies) + 1)
    log(f"  verified: {check}")
    grouped = _group_line(root / "serve.log")
    log(f"  group commit: {grouped}")

    # the API alone: `serve --no-worker` takes the same 202 phase with no commits beside it; a
    # worker process (`icefloe run`) starts only afterwards and commits the backlog
    split_root = _project(temp_dir("http-split-"), port := _free_port())
    server = _start(["-m", "icefloe", "serve", "-p", str(split_root), "--no-worker"], port, split_root, "serve")
    worker = None
    try:
        split = asyncio.run(_load(port, "/v1/records/orders", bodies[:n202], rate))
        ssplit = _summary(split)
        loads["split"] = _loadavg()
        log(f"  API-alone 202 phase (load {loads['split']:.1f}): {ssplit['rate']:.0f} req/s, p50 {ssplit['p50']:.1f} ms, p99 {ssplit['p99']:.1f} ms, {split['statuses']}")
        worker = _start_worker(split_root)
        split_drained = _drain(split_root)
    finally:
        stop_process(server, 60)
        if worker is not None:
            stop_process(worker, 60)
    split_check = _verify(split_root, n202)
    log(f"  API-alone verified: {split_check}")

    ok202 = accepted["statuses"] == {202: n202}
    okcommit = committed["statuses"] == {200: ncommit}
    whole = check["rows"] == check["distinct"] == check["expected"]
    result.row("requests/s achieved (202 phase)", f"{s202['rate']:.0f}", f"{peer_s['rate']:.0f}", f"{s202['rate'] / peer_s['rate']:.2f}x",
               f">= {rate * 0.95:.0f}", s202["rate"] >= rate * 0.95)  # fmt: skip
    result.row("p50 to 202", f"{s202['p50']:.1f} ms", f"{peer_s['p50']:.1f} ms", f"{s202['p50'] / peer_s['p50']:.1f}x")
    result.row("p99 to 202", f"{s202['p99']:.1f} ms", f"{peer_s['p99']:.1f} ms", f"{s202['p99'] / peer_s['p99']:.1f}x",
               f"<= {TARGET_P99_MS:.0f} ms", s202["p99"] <= TARGET_P99_MS)  # fmt: skip
    result.row("max to 202", f"{s202['max']:.0f} ms", f"{peer_s['max']:.0f} ms")
    result.row("answers (202 phase)", _statuses(accepted["statuses"]), _statuses(peer_run["statuses"]), ok=ok202)
    worker_rate = n202 * ROWS / (accepted["seconds"] + drained)
    result.row("worker: 202-phase rows / (phase + drain)", f"{worker_rate / 1e3:.0f} k rows/s", f"drained {drained:.1f} s after")
    result.row(f"p50 / p99 to 200 with ?wait=commit at {commit_rate:.0f} req/s", f"{scommit['p50']:.0f} / {scommit['p99']:.0f} ms")
    result.row("answers (commit phase)", _statuses(committed["statuses"]), ok=okcommit)
    result.row("rows in the table / distinct / sent", f"{check['rows']:,} / {check['distinct']:,} / {check['expected']:,}", ok=whole)
    split_whole = split_check["rows"] == split_check["distinct"] == split_check["expected"]
    result.row("API alone (--no-worker): requests/s", f"{ssplit['rate']:.0f}", f"{peer_s['rate']:.0f}", f"{ssplit['rate'] / peer_s['rate']:.2f}x")
    result.row("API alone: p50 / p99 to 202", f"{ssplit['p50']:.1f} / {ssplit['p99']:.1f} ms",
               f"{peer_s['p50']:.1f} / {peer_s['p99']:.1f} ms", f"{ssplit['p99'] / peer_s['p99']:.1f}x (p99)",
               f"<= {TARGET_P99_MS:.0f} ms", ssplit["p99"] <= TARGET_P99_MS)  # fmt: skip
    result.row("API alone: answers; rows committed after / distinct / sent",
               f"{_statuses(split['statuses'])}; {split_check['rows']:,} / {split_check['distinct']:,} / {split_check['expected']:,}",
               f"worker took {split_drained:.1f} s", ok=split_whole and split["statuses"] == {202: n202})  # fmt: skip
    result.row("ledger commits shared by the API's landings (whole run)", grouped)
    result.row("1-min load average after the peer / 202 / commit / API-alone phases",
               " / ".join(f"{loads[k]:.1f}" for k in ("peer", "202", "commit", "split")))
    result.row("events by state", ", ".join(f"{k} {v}" for k, v in sorted(check["states"].items())))
    result.notes += [
        ("The machine's 2 cores are shared with other helpers' work while this runs: the load generator, the server "
        "and its worker process compete with them and with each other. Read the ratio to the peer (measured in the "
        "same run, same generator, same bodies) rather than the absolute numbers."),
        (f"icefloe: `{Path(PYTHON).name} -m icefloe serve -p DIR` (uvicorn, worker in a child process); "
        f"`POST /v1/records/orders`, {ROWS:,} rows ({len(bodies[0]) / 1e3:.0f} kB) a request, {CONNECTIONS} keep-alive "
        "connections, open loop: latency counts from when a request was due, not when a connection got free."),
        ("API alone: the same 202 phase against `icefloe serve --no-worker`, nothing committing beside it; a "
         "worker process (`icefloe run -p DIR`) started afterwards commits the backlog, and the rows are counted."),
        ("202 = each line checked as a JSON object, the body written and fsynced (file and folder) on the source, the "
        "event in the SQLite ledger, that commit with synchronous=FULL (the WAL fsynced). 200 = committed to the Iceberg table."),
        ("Peer: the same uvicorn + Starlette, a handler that writes each body to a file and fsyncs it (file and "
        "folder), then 202: HTTP plus durable bytes, without checking, ledger or table."),
        (f"Verified afterwards: count(*) and count(DISTINCT order_id) over the table against {len(bodies) + 1:,} "
        "requests x 1,000 rows (the warm-up included): nothing lost, nothing doubled."),
    ]
    result.data = {"loads": loads, "split": ssplit, "split_check": split_check, "drain_seconds": drained, "peer": peer_s, "accepted": s202, "committed": scommit, "check": check,
                   "samples_202_ms": [round(v, 2) for v in accepted["latencies"]]}  # fmt: skip
    if keep:
        log(f"  kept {root} and {peer_dir}")
    return result


def _group_line(log_path: Path) -> str:
    """What `icefloe serve` logs on exit: how many landings shared each ledger commit."""
    found = [line for line in log_path.read_text(errors="replace").splitlines() if "landings in" in line and "ledger commits" in line]
    return found[-1].split("ingest API: ", 1)[-1] if found else "(not logged)"


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _statuses(counts: dict[int, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def run(quick: bool) -> BenchResult:
    """`python -m bench` entry: 30 s at 200 req/s, then 20 s of ?wait=commit at 20 req/s (5 s / 5 s with --quick)."""
    return bench(5 if quick else 30, TARGET_RATE, 20.0, 5 if quick else 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s in the 202 phase")
    parser.add_argument("--commit-rate", type=float, default=20.0, help="requests/s in the ?wait=commit phase")
    parser.add_argument("--commit-seconds", type=float, default=20)
    parser.add_argument("--quick", action="store_true", help="5 s at --rate, then 5 s of ?wait=commit (the lead's quiet-machine rerun)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--peer-server", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_server:
        _peer_main(int(args.peer_server[0]), Path(args.peer_server[1]))
        return 0
    from bench.__main__ import print_results

    seconds, commit_seconds = (5.0, 5.0) if args.quick else (args.seconds, args.commit_seconds)
    result = bench(seconds, args.rate, args.commit_rate, commit_seconds, keep=args.keep)
    print_results([result])
    (ROOT / ".bench").mkdir(exist_ok=True)
    (ROOT / ".bench" / "http.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    return 0 if all(row["result"] != "FAIL" for row in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Worker throughput with metrics and tracing on vs off, `icefloe run --once` on N small landed files.

    python -m bench.telemetry_overhead [--files 300] [--rows 20] [--rounds 5] [--quick]

Both sides are the user's command in a fresh process on a fresh project over the same files:

- off: `telemetry: {metrics: false}` (nothing counted, OpenTelemetry never imported), no /metrics;
- on:  `telemetry: {traces: otlp, endpoint: <a loopback OTLP sink>}`, `--metrics-port`, and a
  scraper reading /metrics every `--scrape-every` seconds (5; Prometheus' default is 15 s,
  many setups scrape every 30 or 60) while the worker runs;
- on-protobuf: the same with `protocol: http/protobuf` (the OpenTelemetry SDK's exporter).

The sink is an HTTP server in this process that answers every OTLP export with 200 (no
collector needed); it counts the spans' bytes so the run shows they were really sent. Rounds
alternate off/on so a busy machine slows both alike; the ratio on/off of the median wall times
is printed. The exporter's flush at exit is inside the timed run.
"""

from __future__ import annotations

import argparse
import http.server
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import yaml

from bench.common import PYTHON, ROOT, SEED, log, temp_dir, write_orders_csv, write_project

TABLE = "bench.telemetry"


class _Sink(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[int]] = [0, 0]  # requests, bytes

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", 0))
        self.rfile.read(size)
        _Sink.received[0] += 1
        _Sink.received[1] += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _project(base: Path, data: Path, telemetry: dict[str, Any]) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    root = write_project(base, source_path=data.resolve(), table=TABLE)
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["telemetry"] = telemetry
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _scrape_while(port: int, every: float, done: threading.Event, took: list[float]) -> None:
    while not done.wait(every):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                reply.read()
        except OSError:
            continue  # not listening yet, or gone at the end of the run
        took.append(time.perf_counter() - started)


def _run(root: Path, metrics_port: int | None, every: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the worker process: less swayed by a busy machine)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = _run_wall(root, metrics_port, every)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _run_wall(root: Path, metrics_port: int | None, every: float) -> float:
    command = [PYTHON, "-m", "icefloe", "run", "--once", "-p", str(root)]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    done, took = threading.Event(), []  # type: ignore[var-annotated]
    scraper = threading.Thread(target=_scrape_while, args=(metrics_port, every, done, took)) if metrics_port else None
    started = time.perf_counter()
    if scraper is not None:
        scraper.start()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - started
    done.set()
    if scraper is not None:
        scraper.join()
    if proc.returncode != 0:
        raise RuntimeError(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="100 files, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds = 100, 3

    work = temp_dir("telemetry-")
    data = work / "landing"
    rng = random.Random(SEED + 11)
    for n in range(args.files):
        write_orders_csv(data / f"orders-{n:05d}.csv", 1 + n * args.rows, args.rows, rng)
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
    sides = {
        "off": ({"metrics": False}, False),
        "on": ({"metrics": True, "traces": "otlp", "endpoint": endpoint}, True),
        # the OpenTelemetry SDK's protobuf exporter (the default before OTLP/JSON), for comparison
        "on-protobuf": ({"metrics": True, "traces": "otlp", "endpoint": endpoint, "protocol": "http/protobuf"}, True),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    log(f"{args.files} files x {args.rows} rows, {args.rounds} rounds, off/on alternating")
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for name in order:
            telemetry, with_metrics = sides[name]
            root = _project(work / f"project-{name}", data, telemetry)
            seconds, used = _run(root, _free_port() if with_metrics else None, args.scrape_every)
            times[name].append(seconds)
            cpu[name].append(used)
            log(f"round {round_ + 1} {name}: {seconds:.2f} s, {used:.2f} CPU s")
    sink.shutdown()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"telemetry overhead, `icefloe run --once` on {args.files} small files ({args.rows} rows each), {args.rounds} rounds each,"
          f" /metrics scraped every {args.scrape_every:g} s")
    print("(2 shared cores, other helpers' jobs running: the ratio is what counts)")
    for name in sides:
        print(f"  {name:11}: median {statistics.median(times[name]):.2f} s  runs {', '.join(f'{t:.2f}' for t in times[name])}")
    for name in sides:
        print(f"  {name:11}: CPU median {statistics.median(cpu[name]):.2f} s  runs {', '.join(f'{t:.2f}' for t in cpu[name])}")
    base = statistics.median(cpu["off"])
    for name in ("on", "on-protobuf"):
        extra = statistics.median(cpu[name]) - base
        print(f"  CPU {name}/off: {statistics.median(cpu[name]) / base:.3f}, {extra * 1000 / args.files:.2f} ms CPU a file more"
              f" (including the process's start)")
    print(f"  spans exported to the sink: {_Sink.received[0]} requests, {_Sink.received[1] / 1e6:.2f} MB")
    print(f"  ratio on/off: {on / off:.3f} (OTLP/JSON, the default)")
    print(f"  ratio on-protobuf/off: {statistics.median(times['on-protobuf']) / off:.3f} (the OpenTelemetry SDK exporter)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

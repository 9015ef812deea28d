"""The dashboard served by `icefloe serve`: a screenshot of every page, and the overview's time
with a big ledger.

    python -m bench.dashboard [--events 1000000] [--requests 20] [--reuse] [--postgres]

1. A small project (three files ingested, one of them bad, one event dead of an outage) served
   by `icefloe serve`; chromium (Playwright, /usr/bin/chromium) signs in and saves each page to
   .bench/dashboard/<page>.png.
2. A project whose SQLite ledger holds `--events` events (bench/bigledger.py's mix), served by
   `icefloe serve`: the overview's first request (the server warmed up before it listened), the
   next requests (each counts the ledger: no count is kept between requests), the events and
   dead-letter pages, and two peers in the same run: GET /healthz on the same server (HTTP with
   no ledger work) and `icefloe status` (the same count, from the CLI). `--postgres` puts the
   same events in a PostgreSQL ledger instead (a fresh database `icefloe_bench_dash` on
   127.0.0.1:5432, or on the server ICEFLOE_BENCH_PG names).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from bench.bigledger import fill, fill_postgres
from bench.common import BENCH_DIR, PYTHON, stop_process
from icefloe.scaffold import init_project
from icefloe.web.auth import hash_token, new_token

OUT = BENCH_DIR / "dashboard"
CHROMIUM = "/usr/bin/chromium"
HEADER = "id,ts,amount\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _add_token(root: Path, scopes: list[str]) -> str:
    token = new_token()
    entry = {"serve": {"tokens": [{"name": "bench", "hash": hash_token(token), "scopes": scopes}]}}
    with (root / "icefloe.yaml").open("a") as f:
        f.write("\n" + yaml.safe_dump(entry, sort_keys=False))
    return token


# `--no-worker`: serve without the worker thread, whose ledger calls (discarding the big ledger's
# pending events, whose files do not exist) share the pages' ledger connection
SERVE_FLAGS: list[str] = []


def _serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([PYTHON, "-m", "icefloe", "serve", "-p", str(root), "--port", str(port), *SERVE_FLAGS])
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2).read()
            return proc, url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                stop_process(proc, 10)
                raise RuntimeError("icefloe serve did not start") from None
            time.sleep(0.1)


def _get(url: str, token: str) -> tuple[float, int]:
    """Seconds for one GET, whole body read, and its size."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as answer:
        size = len(answer.read())
        assert answer.status == 200, (url, answer.status)
    return time.perf_counter() - began, size


def small_project(root: Path) -> tuple[Path, str]:
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    config = {
        "sources": {"landing": {"type": "folder", "path": "landing"}},
        "routes": [{"source": "landing", "match": "**/*.csv", "pipeline": "orders"}],
        "pipelines": {"orders": {
            "read": {"format": "csv", "schema": {"id": "long", "ts": "timestamp", "amount": "decimal(12,2)"}},
            "checks": [{"range": {"amount": [0, None]}}],
            "write": {"table": "sales.orders"},
        }},
    }  # fmt: skip
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "landing").mkdir()
    token = _add_token(root, ["operate"])
    files = root.parent / "files"
    files.mkdir(exist_ok=True)
    for name, rows in (("jan.csv", ["1,2026-01-01 10:00:00,12.50", "2,2026-01-01 11:00:00,-3.00", "3,2026-01-01 12:00:00,7.25"]),
                       ("feb.csv", ["4,2026-02-01 09:00:00,20.00", "5,2026-02-02 09:30:00,1.10"]),
                       ("broken.csv", ["6,2026-02-03 10:00:00,5.00", "seven,2026-02-03 10:00:00,1.00"])):  # fmt: skip
        (files / name).write_text(HEADER + "\n".join(rows) + "\n")
        subprocess.run([PYTHON, "-m", "icefloe", "ingest", "-p", str(root), str(files / name)], check=False,
                       capture_output=True)  # fmt: skip
    return root, token


def screenshots(root: Path, token: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    proc, url = _serve(root)
    saved = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "/ui/login")
            page.screenshot(path=str(OUT / "login.png"))
            page.fill("#token", token)
            page.click("#sign-in")
            page.wait_for_url(url + "/ui/")
            dead = page.locator("a.bad").count()
            pages = {"overview": "/ui/", "events": "/ui/events", "dlq": "/ui/dlq", "tables": "/ui/tables",
                     "table": "/ui/tables/sales.orders", "lineage-table": "/ui/lineage?table=sales.orders",
                     "lineage-object": "/ui/lineage?object=jan.csv", "trace": "/ui/events/jan.csv",
                     "trace-dead": "/ui/events/broken.csv"}  # fmt: skip
            for name, path in pages.items():
                page.goto(url + path)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                saved.append(OUT / f"{name}.png")
            page.goto(url + "/ui/sql")
            page.fill("#sql", "select * from read_csv('/etc/passwd')")
            page.click("#run")
            page.wait_for_selector("#sql-error")
            page.screenshot(path=str(OUT / "sql-refused.png"), full_page=True)
            page.fill("#sql", "select id, amount from sales.orders order by id")
            page.click("#run")
            page.wait_for_selector("#result")
            page.screenshot(path=str(OUT / "sql.png"), full_page=True)
            saved += [OUT / "sql-refused.png", OUT / "sql.png"]
            browser.close()
        print(f"screenshots: {len(saved) + 1} pages in {OUT} (the overview showed {dead} pipeline(s) with dead events)")
    finally:
        stop_process(proc, 10)
    return saved


def _fresh_database(server: str) -> str:
    import psycopg

    name = "icefloe_bench_dash"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def _empty_first(root: Path, postgres: str | None) -> float:
    """Seconds for the first overview of a fresh server on the same kind of project with an empty
    ledger: what the first request costs besides reading the ledger (imports, opening the catalog)."""
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    init_project(root)
    if postgres is not None:
        import psycopg

        uri = f"{postgres}/icefloe_bench_dash_empty"
        with psycopg.connect(f"{postgres}/postgres", autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS icefloe_bench_dash_empty WITH (FORCE)")
            admin.execute("CREATE DATABASE icefloe_bench_dash_empty")
        with (root / "icefloe.yaml").open("a") as f:
            f.write(f"\nledger: {uri}\n")
    token = _add_token(root, ["read"])
    proc, url = _serve(root)
    try:
        return _get(url + "/ui/", token)[0]
    finally:
        stop_process(proc, 10)


def big_ledger(root: Path, events: int, requests: int, reuse: bool, postgres: str | None = None) -> None:
    import shutil

    if not reuse or not (root / "icefloe.yaml").exists():
        shutil.rmtree(root, ignore_errors=True)
        init_project(root)
        began = time.perf_counter()
        if postgres is not None:
            uri = _fresh_database(postgres)
            with (root / "icefloe.yaml").open("a") as f:
                f.write(f"\nledger: {uri}\n")
            fill_postgres(uri, root, events)
        else:
            fill(root / ".icefloe" / "ledger.db", events)
        kind = "PostgreSQL" if postgres else "SQLite"
        print(f"{root}: {events:,} events put in the {kind} ledger in {time.perf_counter() - began:.0f} s")
        (root / ".token").write_text(_add_token(root, ["read"]))
    token = (root / ".token").read_text()
    empty = _empty_first(root.parent / ("empty-pg" if postgres else "empty"), postgres)
    proc, url = _serve(root)
    try:
        first, size = _get(url + "/ui/", token)
        print(f"overview, first request of a fresh server: {first * 1000:.0f} ms, {size:,} bytes;"
              f" peer: the same on an empty ledger {empty * 1000:.0f} ms (imports, catalog); difference"
              f" {(first - empty) * 1000:.0f} ms")  # fmt: skip
        runs: dict[str, list[float]] = {"overview": [], "healthz": [], "events": [], "events dead": [], "dlq": []}
        paths = {"overview": "/ui/", "healthz": "/healthz", "events": "/ui/events", "events dead": "/ui/events?state=dead",
                 "dlq": "/ui/dlq"}  # fmt: skip
        for _ in range(requests):  # interleaved, so a busy machine slows each alike
            for name, path in paths.items():
                runs[name].append(_get(url + path, token)[0])
        status = []
        for _ in range(max(requests // 10, 1)):
            began = time.perf_counter()
            subprocess.run([PYTHON, "-m", "icefloe", "status", "-p", str(root)], check=True, capture_output=True)
            status.append(time.perf_counter() - began)
        base = statistics.median(runs["healthz"])
        for name, got in runs.items():
            median = statistics.median(got)
            print(f"GET {paths[name]}: median {median * 1000:.1f} ms, max {max(got) * 1000:.1f} ms over {len(got)}"
                  f" ({median / base:.1f}x /healthz)")  # fmt: skip
        overview = statistics.median(runs["overview"])
        print(f"`icefloe status` (the same count from the CLI): median {statistics.median(status):.2f} s over {len(status)};"
              f" overview median / status median = {overview / statistics.median(status):.4f}")  # fmt: skip
    finally:
        stop_process(proc, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="reuse the big ledger of an earlier run")
    parser.add_argument("--skip-screenshots", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="the big ledger in PostgreSQL, not SQLite")
    parser.add_argument("--no-worker", action="store_true", help="serve without a worker thread")
    args = parser.parse_args()
    if args.no_worker:
        SERVE_FLAGS.append("--no-worker")
    work = BENCH_DIR / "tmp" / "dashboard"
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_screenshots:
        if not Path(CHROMIUM).exists():
            sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
        root, token = small_project(work / "small" / "project")
        screenshots(root, token)
    server = os.environ.get("ICEFLOE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432") if args.postgres else None
    big_ledger(work / ("big-pg" if server else "big"), args.events, args.requests, args.reuse, server)


if __name__ == "__main__":
    main()

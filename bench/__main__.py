"""`python -m bench [--quick] [--only N[,N]] [--keep]`: run the benchmarks, print and save the results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.common import BENCH_DIR, COLUMNS, PYTHON, ROOT, TMP_DIR, BenchResult, git_revision, log

# number -> "module" (its `run`) or "module:function"
BENCHMARKS = {
    1: "bench.latency",
    2: "bench.smallfiles",
    3: "bench.bigcsv",
    4: "bench.xml",
    5: "bench.maintain:run_commits",
    6: "bench.maintain:run_groupby",
    7: "bench.upsert",
    8: "bench.flat",
    9: "bench.landing_scale",
    10: "bench.maint_latency",
    11: "bench.workers",
    12: "bench.http",
    13: "bench.xml_fast",
    14: "bench.nats",
    15: "bench.query",
    16: "bench.upsert_run",
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run (seconds, not minutes)")
    parser.add_argument("--only", default="", help="run only these benchmarks: 1 latency, 2 small files, 3 big CSV, 4 big XML, 5 10k commits with maintenance, 6 group-by before/after compaction, 7 upsert, 8 flat per-file cost, 9 landing cost vs source size, 10 commit latency with maintenance on vs off, 11 workers on PostgreSQL, 12 HTTP ingest API, 13 XML with xml2arrow, 14 NATS, 15 repeated queries vs DuckDB, 16 run --once upsert vs pyiceberg (e.g. 2 or 1,3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects under .bench/tmp")
    args = parser.parse_args(argv)
    try:
        args.numbers = sorted({int(n) for n in args.only.split(",") if n.strip()}) or sorted(BENCHMARKS)
    except ValueError:
        parser.error(f"--only takes benchmark numbers, e.g. 2 or 1,3; got {args.only!r}")
    if unknown := [n for n in args.numbers if n not in BENCHMARKS]:
        parser.error(f"no benchmark {unknown[0]}; there are {', '.join(map(str, BENCHMARKS))}")
    return args


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "icefloe": f"{version('icefloe')} ({git_revision()})",
        "pyiceberg": version("pyiceberg"),
        "pyarrow": version("pyarrow"),
        "duckdb": version("duckdb"),
    }


def _load() -> float:
    """The 1-minute load average: other work on the machine skews every timing here."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _table(result: BenchResult) -> Table:
    table = Table(title=f"{result.number}. {result.title}", title_justify="left", show_lines=False)
    for column in COLUMNS:
        table.add_column(column, no_wrap=column in ("icefloe", "ratio", "result"))
    for row in result.rows:
        style = {"PASS": "green", "FAIL": "bold red"}.get(row["result"], "")
        cells = [escape(row[c]) for c in COLUMNS[:-1]]
        table.add_row(*cells, f"[{style}]{row['result']}[/]" if style else "")
    return table


def _markdown(results: list[BenchResult], meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    lines = [
        f"Measured {meta['finished_at']} with `{meta['command']}`"
        f"{' (quick smoke run: scaled down, not representative)' if meta['quick'] else ''} on "
        f"{machine['cpus']} CPUs, Python {machine['python']}, icefloe {machine['icefloe']}, pyiceberg {machine['pyiceberg']}, "
        f"pyarrow {machine['pyarrow']}, DuckDB {machine['duckdb']}; 1-min load average "
        f"{meta['load_average']['start']} at the start, {meta['load_average']['end']} at the end.",
        "",
    ]
    for result in results:
        lines += [f"**{result.number}. {result.title}**", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in result.rows:
            cells = [row[c].replace("|", "\\|") or " " for c in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {note}" for note in result.notes]
        lines.append("")
    return "\n".join(lines)


def print_results(results: list[BenchResult], console: Console | None = None) -> None:
    """The tables and notes, as `python -m bench` prints them (also for a module run alone)."""
    # piped output (a log, CI) gets a wide table rather than rich's 80-column default
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    for result in results:
        console.print(_table(result))
        for note in result.notes:
            console.print(f"  [dim]- {escape(note)}[/dim]")
        console.print()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    # piped output (a log, CI) gets a wide table rather than rich's 80-column default
    console = Console(width=None if sys.stdout.isatty() else 150)
    command = "python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    log(f"{command}: benchmarks {', '.join(map(str, args.numbers))}; python {PYTHON}; data and temp projects under {BENCH_DIR.relative_to(ROOT)}/")
    load_start = _load()
    if load_start > 0.5 * (os.cpu_count() or 1):
        log(f"warning: the machine is busy (1-min load {load_start:.1f} on {os.cpu_count()} CPUs); timings will be noisy")
    started = time.time()
    results: list[BenchResult] = []
    failed = False
    for number in args.numbers:
        name, _, function = BENCHMARKS[number].partition(":")
        module = __import__(name, fromlist=[function or "run"])
        try:
            results.append(getattr(module, function or "run")(args.quick))
        except Exception as exc:  # noqa: BLE001 - report it, run the others, exit non-zero
            failed = True
            console.print_exception(show_locals=False)
            failed_result = BenchResult(number, f"{BENCHMARKS[number]} FAILED")
            failed_result.row("error", f"{type(exc).__name__}: {exc}"[:300], ok=False)
            results.append(failed_result)
    meta = {
        "command": command,
        "quick": args.quick,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.time() - started, 1),
        "machine": _machine(),
        "load_average": {"start": round(load_start, 2), "end": round(_load(), 2)},
    }
    console.print()
    console.rule(f"[bold]icefloe benchmarks[/bold]{' (quick)' if args.quick else ''}")
    machine = meta["machine"]
    console.print(
        f"icefloe {escape(machine['icefloe'])}, pyiceberg {machine['pyiceberg']}, pyarrow {machine['pyarrow']}, "
        f"DuckDB {machine['duckdb']}, Python {machine['python']}, {machine['cpus']} CPUs, "
        f"load average {meta['load_average']['start']} -> {meta['load_average']['end']}"
    )
    print_results(results, console)
    BENCH_DIR.mkdir(exist_ok=True)
    payload = dict(meta, results=[r.to_json() for r in results])
    (BENCH_DIR / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (BENCH_DIR / "results.md").write_text(_markdown(results, meta))
    log(f"wrote {BENCH_DIR.relative_to(ROOT)}/results.json and results.md ({meta['seconds']:.0f}s in all)")
    if not args.keep and not failed:
        shutil.rmtree(TMP_DIR, ignore_errors=True)
    elif TMP_DIR.exists():
        log(f"temporary projects kept in {TMP_DIR.relative_to(ROOT)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

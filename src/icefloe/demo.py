"""`icefloe demo`: a temporary project, sample data, one run, and a report of what happened."""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console

from icefloe.cli.output import TextOutput
from icefloe.project import Project
from icefloe.scaffold import init_project

__all__ = ["build_demo_data", "run_demo"]


def _orders_csv(path: Path, first_id: int, rows: int, rng: random.Random, amount_scale: float = 1.0) -> None:
    start = datetime(2026, 11, 1)
    lines = ["order_id,ts,customer,amount"]
    for i in range(first_id, first_id + rows):
        ts = start + timedelta(minutes=i * 7 % (60 * 24 * 20))
        lines.append(f"{i},{ts.isoformat(sep=' ')},cust{rng.randint(1, 300)},{rng.uniform(1, 500) * amount_scale:.2f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def build_demo_data(landing: Path, seed: int = 7) -> dict[str, int]:
    """Orders CSVs, an NDJSON click stream over many small files, inventory snapshots, one bad file."""
    rng = random.Random(seed)
    for day in range(5):
        _orders_csv(landing / f"orders/2026/11/0{day + 1}.csv", day * 1000 + 1, 1000, rng)
    # one order is negative: the range check sends that row to quarantine, the rest commit
    bad_row = landing / "orders/2026/11/05.csv"
    bad_row.write_text(bad_row.read_text().rstrip("\n") + "\n99999,2026-11-05 10:00:00,cust1,-5.00\n")
    # a malformed file: a value that is not a decimal on line 4
    (landing / "orders/2026/11/malformed.csv").write_text(
        "order_id,ts,customer,amount\n1,2026-11-01 10:00:00,a,1.00\n2,2026-11-01 11:00:00,b,2.00\n3,2026-11-01 12:00:00,c,twelve\n"
    )
    pages = ["/", "/cart", "/checkout", "/product/1", "/product/2"]
    for n in range(60):
        events = [
            {"ts": f"2026-11-0{1 + n % 5}T{10 + n % 10:02d}:{i % 60:02d}:00", "user": f"u{rng.randint(1, 50)}", "page": rng.choice(pages)}
            for i in range(50)
        ]
        (landing / f"events/clicks-{n:03d}.ndjson").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (landing / "inventory").mkdir(parents=True, exist_ok=True)
    (landing / "inventory/warehouse-a.csv").write_text("sku,qty\nA-1,10\nA-2,20\nA-3,30\n")
    return {"orders": 5001, "clicks": 3000}


def run_demo(keep: str | None = None) -> None:
    console = Console()
    # the report below shows every failure; per-event warnings would only repeat it
    logging.getLogger("icefloe").setLevel(logging.ERROR)
    out = TextOutput()
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="icefloe-demo-"))
    if keep and folder.exists():
        shutil.rmtree(folder)
    started = time.time()
    try:
        init_project(folder)
        landing = folder / "landing"
        build_demo_data(landing)
        console.rule("[bold]icefloe demo")
        console.print(f"project: {folder}  (files in {landing})")
        with Project(folder) as project:
            console.print("1. run --once: process everything that landed, then stop")
            project.run(once=True)
            console.print("2. a changed inventory file is re-landed: replace_source swaps its rows in one commit")
            (landing / "inventory/warehouse-a.csv").write_text("sku,qty\nA-1,11\nA-4,40\n")
            console.print("3. an orders file is re-landed with corrected amounts: upsert by order_id")
            _orders_csv(landing / "orders/2026/11/01.csv", 1, 1000, random.Random(99), amount_scale=2.0)
            console.print("4. the same click file delivered again (same bytes): a no-op")
            shutil.copy(landing / "events/clicks-000.ndjson", landing / "events/clicks-000.ndjson.tmp")
            (landing / "events/clicks-000.ndjson.tmp").replace(landing / "events/clicks-000.ndjson")
            project.run(once=True)
            out.rows(
                [{k: t[k] for k in ("table", "rows", "files", "snapshots")} for t in project.tables()], title="tables"
            )
            out.rows(
                project.sql(
                    "select 'sales.orders' as \"table\", count(*) as \"rows\" from sales.orders union all "
                    "select 'web.clicks', count(*) from web.clicks union all "
                    "select 'sales.inventory', count(*) from sales.inventory"
                ).to_pylist(),
                title="row counts",
            )
            out.rows(
                [{"event": e.id, "object": e.object_ref, "error": e.error} for e in project.dead_letters()],
                title="dead-letter queue",
            )
            out.rows(
                project.sql("select order_id, amount, _icefloe_check from icefloe.quarantine").to_pylist(),
                title="quarantine (rows that failed a check; the rest of their file committed)",
            )
            out.rows(
                project.sql(
                    "select date_trunc('day', ts)::date as day, count(*) as orders, sum(amount) as revenue "
                    "from sales.orders where ts < '2026-11-06' group by 1 order by 1"
                ).to_pylist(),
                title="query: orders per day",
            )
            out.rows(project.sql("select sku, qty, _icefloe_source from sales.inventory order by sku").to_pylist(), title="sales.inventory after re-landing")
            out.rows(
                project.sql("select state, count(*) as events from icefloe.events group by 1 order by 1").to_pylist(),
                title="where is my data? select state, count(*) from icefloe.events",
            )
            committed = [e for e in project.ledger.events(states=["committed"]) if e.pipeline == "orders"]
            traced = project.trace(committed[-1].id)
            out.rows(traced["steps"], title=f"trace of event {traced['event']['id']} ({traced['event']['key']})")
        console.print(f"demo finished in {time.time() - started:.1f} s; explore it with: icefloe status -p {folder}")
    finally:
        if keep is None:
            console.print(f"[dim](the demo project stays in {folder} until you delete it)[/dim]")

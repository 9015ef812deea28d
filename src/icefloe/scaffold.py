"""`icefloe init`: a new project folder with a commented example pipeline."""

from __future__ import annotations

from pathlib import Path

from icefloe.config import CONFIG_FILE
from icefloe.errors import ConfigError

__all__ = ["EXAMPLE_CONFIG", "EXAMPLE_HOOKS", "init_project"]

EXAMPLE_CONFIG = """\
# icefloe project. Paths are relative to this file's folder.
catalog: sqlite:///catalog.db        # Iceberg catalog; postgresql://... or http(s):// (REST) too
warehouse: warehouse/                # where table data and metadata live; s3://bucket/prefix later

sources:
  landing: {type: folder, path: landing}   # drop files here; *.part, *.tmp and .hidden are ignored

routes:                               # which pipelines an object goes to (several = fan-out)
  - {source: landing, match: "orders/**/*.csv", pipeline: orders}
  - {source: landing, match: "events/*.ndjson", pipeline: clicks}
  - {source: landing, match: "inventory/*.csv", pipeline: inventory}

pipelines:
  orders:
    read: {format: csv, schema: {order_id: long, ts: timestamp, customer: string, amount: "decimal(12,2)"}}
    transform:
      - sql: "select *, amount * 1.2 as gross from batch"   # `batch` is the current Arrow batch
      - python: "hooks:enrich"                              # hooks.py next to this file
    checks:                                                 # failing rows go to quarantine
      - not_null: [order_id, ts]
      - range: {amount: [0, null]}
    dedupe: {key: [order_id]}
    write: {table: sales.orders, mode: upsert, key: [order_id], partition: ["day(ts)"]}
    batch: {max_wait: 500ms, max_rows: 1000000}
  clicks:
    read: {format: ndjson, schema: {ts: timestamp, user: string, page: string}}
    write: {table: web.clicks, mode: append}
  inventory:
    read: {format: csv, schema: {sku: string, qty: long}}
    write: {table: sales.inventory, mode: replace_source}   # a re-landed file replaces its rows

maintenance:                          # the workers compact, expire and clean each table they write
  keep_snapshots: 20                  # time travel (`icefloe sql --as-of`) reaches this far back...
  keep_for: 1h                        # ...and at least this long
  tables: {sales.orders: {sort_by: [order_id]}}   # compacted files sorted by key: upserts prune better

environments:                         # `--env production` overlays these keys
  production: {catalog: "postgresql://icefloe@db/icefloe", warehouse: "s3://lake/icefloe"}
"""

EXAMPLE_HOOKS = '''\
"""Python transforms for this project: each takes and returns a pyarrow.Table."""

import pyarrow as pa
import pyarrow.compute as pc


def enrich(batch: pa.Table) -> pa.Table:
    return batch.append_column("customer_upper", pc.utf8_upper(batch["customer"]))
'''


def init_project(folder: str | Path) -> Path:
    root = Path(folder)
    config = root / CONFIG_FILE
    if config.exists():
        raise ConfigError(f"{config} exists already; not overwriting it")
    for sub in ("landing/orders", "landing/events", "landing/inventory"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config.write_text(EXAMPLE_CONFIG)
    (root / "hooks.py").write_text(EXAMPLE_HOOKS)
    return root

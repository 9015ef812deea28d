"""Small builders shared by tests: a project folder with one folder source."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def make_project(root: Path, pipelines: dict[str, Any], routes: list[dict[str, Any]] | None = None, **top: Any) -> Path:
    config = {
        "sources": {"landing": {"type": "folder", "path": "landing", "settle": "10ms"}},
        "routes": routes if routes is not None else [{"source": "landing", "match": "**", "pipeline": list(pipelines)}],
        "pipelines": pipelines,
        **top,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "landing").mkdir(exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def csv_file(path: Path, header: str, rows: list[str], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long", "ts": "timestamp", "amount": "decimal(12,2)"}},
    "write": {"table": "sales.orders"},
}


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> bool:
    """Poll until `predicate()` is true or `timeout` seconds pass (for workers running in the background)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class CountedCommits:
    """Counts the COMMITs a SQL ledger's connection runs from now on: its write transactions
    (on PostgreSQL, each one waits for its WAL flush)."""

    def __init__(self, ledger: Any) -> None:
        self.inner = ledger._connection()
        self.count = 0
        ledger._db = self

    def execute(self, sql: str, *params: Any) -> Any:
        self.count += sql == "COMMIT"
        return self.inner.execute(sql, *params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

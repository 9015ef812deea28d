"""A project with tokens for the ingest API tests: a records pipeline, an objects pipeline, a CSV one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from icefloe import Project
from icefloe.web.auth import hash_token
from tests.helpers import make_project

PIPELINES = {
    "clicks": {"read": {"format": "ndjson", "schema": {"id": "long", "page": "string"}}, "write": {"table": "raw.clicks"}},
    "files": {"read": {"format": "ndjson"}, "write": {"table": "raw.files"}},
    "orders": {"read": {"format": "csv"}, "write": {"table": "sales.orders"}},
}
ROUTES = [{"source": "landing", "match": "uploads/**", "pipeline": ["files"]}]
TOKENS = {"loader": "ifl_loader_secret", "clicker": "ifl_clicks_only", "reader": "ifl_reader_secret"}


def api_project(root: Path, **ingest: Any) -> Path:
    serve = {
        "tokens": [
            {"name": "loader", "hash": hash_token(TOKENS["loader"]), "scopes": ["ingest"]},
            {"name": "clicker", "hash": hash_token(TOKENS["clicker"]), "scopes": ["ingest:clicks"]},
            {"name": "reader", "hash": hash_token(TOKENS["reader"]), "scopes": ["read"]},
        ],
        "ingest": ingest,
    }
    return make_project(root, PIPELINES, ROUTES, serve=serve)


def bearer(name: str = "loader") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def files_under(root: Path) -> list[str]:
    """Every file on the folder source, hidden ones included (what a failed request must not leave)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@contextmanager
def worker(project: Project) -> Iterator[None]:
    """`icefloe serve`'s worker thread: commits what the API lands."""
    stop = threading.Event()
    thread = threading.Thread(target=project.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)

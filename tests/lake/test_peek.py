"""`status` reads its table figures from the files without pyiceberg (`lake.peek`): they must be
the numbers pyiceberg gives over the same tables, whatever the tables went through."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icefloe import Project
from icefloe.lake.peek import CannotPeek, peek_tables
from tests.conftest import require_service
from tests.helpers import csv_file, make_project

SERVER = "postgresql://postgres@127.0.0.1:5432"

ORDERS = {
    "read": {"format": "csv", "schema": {"id": "long", "ts": "timestamp", "amount": "decimal(12,2)"}},
    "write": {"table": "sales.orders", "mode": "upsert", "key": ["id"], "partition": ["day(ts)"]},
}
CLICKS = {
    "read": {"format": "csv", "schema": {"user": "string", "page": "string"}},
    "write": {"table": "web.clicks"},
}
NEVER = {"read": {"format": "csv", "schema": {"x": "long"}}, "write": {"table": "web.never"}}


def _project(root: Path, **top: Any) -> Path:
    routes = [{"source": "landing", "match": f"{p}/*.csv", "pipeline": p} for p in ("orders", "clicks", "never")]
    return make_project(root, {"orders": ORDERS, "clicks": CLICKS, "never": NEVER}, routes=routes,
                        maintenance={"compact_min_files": 2, "keep_snapshots": 1}, **top)  # fmt: skip


def _fill(root: Path, files: Path) -> None:
    with Project(root) as p:
        for n in range(3):
            rows = [f"{n * 10 + i},2026-01-0{1 + i % 2} 10:00:00,{n}.{i}0" for i in range(4)]
            p.ingest([csv_file(files / f"o{n}.csv", "id,ts,amount", rows)], key_prefix="orders/")
            p.ingest([csv_file(files / f"c{n}.csv", "user,page", [f"u{n},/a", f"u{n},/b"])], key_prefix="clicks/")
        # an upsert over rows already there, then maintenance: deleted entries, replace snapshots,
        # rewritten manifests and expired snapshots for the walk to see
        p.ingest([csv_file(files / "again.csv", "id,ts,amount", ["1,2026-01-01 10:00:00,9.99"])], key_prefix="orders/")
        p.maintain()
        p.ingest([csv_file(files / "c9.csv", "user,page", ["u9,/z"])], key_prefix="clicks/")


def _tables(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows if r["kind"] == "table"}


def _compare(root: Path) -> None:
    with Project(root) as p:
        peeked = _tables(p.status())
        assert "catalog" not in p.runtime.__dict__, "status opened the catalog: it did not peek"
        p.catalog  # noqa: B018 - opened: status now asks pyiceberg, as the dashboard's does
        through = _tables(p.status())
    assert peeked == through
    assert peeked["web.never"]["exists"] is False
    orders, clicks = peeked["sales.orders"], peeked["web.clicks"]
    assert orders["exists"] and orders["rows"] == 12 and orders["data_files"] >= 1 and orders["metadata_mb"] > 0
    assert clicks["rows"] == 7 and clicks["maintenance"] == "succeeded" and clicks["last_maintained"]


def test_status_figures_without_pyiceberg_are_pyicebergs(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    _fill(root, tmp_path / "files")
    _compare(root)


@pytest.fixture
def pg_catalog() -> Iterator[str]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    name = f"icefloe_peek_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{SERVER}/{name}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.service
def test_status_figures_from_a_postgresql_catalog(tmp_path: Path, pg_catalog: str) -> None:
    root = _project(tmp_path / "p", catalog=pg_catalog)
    _fill(root, tmp_path / "files")
    _compare(root)


def test_what_it_cannot_read_it_leaves_to_pyiceberg(tmp_path: Path) -> None:
    small = {"a.b": 1}
    for uri in ("http://127.0.0.1:1/catalog", "sqlite:///:memory:", "sqlite:///missing.db"):
        with pytest.raises(CannotPeek):
            peek_tables(uri, tmp_path, ["a.b"], small)
    root = _project(tmp_path / "p")
    _fill(root, tmp_path / "files")
    lists = list((root / "warehouse").glob("sales/orders/metadata/snap-*.avro"))
    for path in lists:
        path.write_bytes(path.read_bytes().replace(b"deflate", b"zstd\x00\x00\x00", 1))
    with pytest.raises(CannotPeek, match="codec"):
        peek_tables(f"sqlite:///{root / 'catalog.db'}", root, ["sales.orders"], {"sales.orders": 1})

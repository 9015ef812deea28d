"""A SQLite catalog file runs in WAL mode with synchronous=FULL (`lake.compat.LeanSqlCatalog`):
each commit durable when it returns, one fsync instead of a rollback journal's several, and a
reader in another process never waits behind a commit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pyarrow as pa

from icefloe.lake.catalog import open_catalog


def test_a_sqlite_catalog_file_is_wal_and_fully_synced(tmp_path: Path) -> None:
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    catalog.create_namespace("db")
    table = catalog.create_table("db.t", schema=pa.schema([("x", pa.int64())]))
    table.append(pa.table({"x": [1, 2]}))
    with sqlite3.connect(tmp_path / "catalog.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    levels = []
    with catalog.engine.connect() as conn:  # type: ignore[attr-defined]
        levels.append(conn.exec_driver_sql("PRAGMA synchronous").fetchone()[0])

    def from_another_thread() -> None:  # a second pooled connection gets the same settings
        with catalog.engine.connect() as conn:  # type: ignore[attr-defined]
            levels.append(conn.exec_driver_sql("PRAGMA synchronous").fetchone()[0])

    thread = threading.Thread(target=from_another_thread)
    thread.start()
    thread.join()
    assert levels == [2, 2]  # FULL: the WAL is fsynced at every commit
    assert catalog.load_table("db.t").scan().to_arrow().num_rows == 2


def test_a_reader_does_not_wait_for_a_commit_in_progress(tmp_path: Path) -> None:
    catalog = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    catalog.create_namespace("db")
    catalog.create_table("db.t", schema=pa.schema([("x", pa.int64())]))
    writer = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None, timeout=0)
    writer.execute("BEGIN EXCLUSIVE")  # a rollback journal shuts readers out; WAL does not
    try:
        reader = sqlite3.connect(tmp_path / "catalog.db", timeout=0)  # no busy wait: a lock would raise
        assert reader.execute("SELECT count(*) FROM iceberg_tables").fetchone()[0] == 1
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_in_memory_catalog_stays_as_it_was(tmp_path: Path) -> None:
    catalog = open_catalog("sqlite:///:memory:", "warehouse", tmp_path)
    catalog.create_namespace("db")
    assert [n for n in catalog.list_namespaces()] == [("db",)]

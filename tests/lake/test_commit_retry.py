"""pyiceberg's commit retry is off for icefloe's own commits only, never through table properties."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table, Transaction
from pyiceberg.table.update.snapshot import _SnapshotProducer

from icefloe import Project
from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, open_catalog
from icefloe.lake.compat import RETRY_PROPERTY, NoRetryTransaction, transaction
from tests.helpers import csv_file, make_project


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _staged(event: str, ids: list[int]) -> Staged:
    n = len(ids)
    return Staged(event, f"src:{event}", pa.table({"id": pa.array(ids, pa.int64()), "_icefloe_event": [event] * n, "_icefloe_source": [f"src:{event}"] * n}))


def _foreign_table(catalog: Catalog, properties: dict[str, str] | None = None) -> Table:
    """A table as another engine (or an older icefloe) made it."""
    catalog.create_namespace("s")
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("_icefloe_event", pa.large_string()), pa.field("_icefloe_source", pa.large_string())])
    return catalog.create_table("s.t", schema=schema, properties=properties or {})


def test_tables_icefloe_creates_leave_other_engines_retries_alone(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"p": {"read": {"format": "csv"}, "write": {"table": "s.t"}}}))
    (event,) = project.ingest([csv_file(tmp_path / "a.csv", "id", ["1"])])
    assert event.state == "committed"
    assert RETRY_PROPERTY not in project.catalog.load_table("s.t").properties


def test_a_table_created_before_loses_the_property_in_its_next_commit(catalog: Catalog) -> None:
    _foreign_table(catalog, {RETRY_PROPERTY: "0", "owner": "me"})
    before = len(catalog.load_table("s.t").metadata.metadata_log)
    TableWriter(catalog, WriteConfig(table="s.t")).commit([_staged("e1", [1])])
    table = catalog.load_table("s.t")
    assert RETRY_PROPERTY not in table.properties and table.properties["owner"] == "me"
    assert len(table.metadata.metadata_log) == before + 1  # one metadata change: the data commit carried it
    assert [r["id"] for r in table.scan().to_arrow().to_pylist()] == [1]


def test_a_conflict_comes_back_to_icefloe_even_where_pyiceberg_would_retry(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _foreign_table(catalog)  # no retry property: pyiceberg's default is 4 silent re-applies
    first = TableWriter(catalog, WriteConfig(table="s.t"))
    first.commit([_staged("e0", [0])])
    other = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    second = TableWriter(other, WriteConfig(table="s.t"))
    stale = second.load()
    first.commit([_staged("e1", [1])])
    conflicts: list[int] = []
    second.load = lambda: stale if not conflicts else other.load_table("s.t")  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="pyiceberg"):
        second.commit([_staged("e2", [2])], on_conflict=conflicts.append)
    assert conflicts == [1]  # icefloe saw it, re-read the event ids and committed on fresh metadata
    assert "retrying" not in caplog.text
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [0, 1, 2]


def test_the_first_retry_after_a_lost_race_does_not_back_off(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the usual winner is a maintenance commit that is done by the time we reload: 50 ms of sleep
    # on a ~15 ms commit was a bench 8 p99 outlier; later conflicts (other workers) still back off
    _foreign_table(catalog)
    first = TableWriter(catalog, WriteConfig(table="s.t"))
    first.commit([_staged("e0", [0])])
    other = open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)
    second = TableWriter(other, WriteConfig(table="s.t"))
    loads = 0

    def stale_twice() -> Table:
        nonlocal loads
        loads += 1
        table = other.load_table("s.t")
        if loads <= 2:  # someone commits between each of our first two loads and our commits
            first.commit([_staged(f"r{loads}", [10 + loads])])
        return table

    slept: list[float] = []
    monkeypatch.setattr("icefloe.lake.writer.time.sleep", slept.append)
    second.load = stale_twice  # type: ignore[method-assign]
    second.commit([_staged("e2", [2])])
    assert len(slept) == 2 and slept[0] <= 0.005 and slept[1] >= 0.05
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [0, 2, 11, 12]


# -- the pyiceberg internals compat.py relies on (pyiceberg 0.12) -----------------------------------
def test_pyiceberg_retries_only_while_snapshot_producers_are_registered() -> None:
    source = inspect.getsource(Transaction.commit_transaction)
    assert "COMMIT_NUM_RETRIES" in source and "not self._snapshot_producers" in source
    assert "self._snapshot_producers" in inspect.getsource(Transaction.__init__)
    assert callable(_SnapshotProducer._clean_all_uncommitted)


def test_no_retry_transaction_fails_on_the_first_conflict_and_removes_its_manifests(catalog: Catalog, tmp_path: Path) -> None:
    table = _foreign_table(catalog)
    table.append(pa.table({"id": pa.array([0], pa.int64()), "_icefloe_event": ["x"], "_icefloe_source": ["x"]}))
    stale = catalog.load_table("s.t")
    table.append(pa.table({"id": pa.array([1], pa.int64()), "_icefloe_event": ["y"], "_icefloe_source": ["y"]}))
    metadata = tmp_path / "warehouse"
    before = set(metadata.rglob("*.avro"))
    tx = transaction(stale)
    assert isinstance(tx, NoRetryTransaction)
    tx.append(pa.table({"id": pa.array([2], pa.int64()), "_icefloe_event": ["z"], "_icefloe_source": ["z"]}))
    with pytest.raises(CommitFailedException):
        tx.commit_transaction()
    assert set(metadata.rglob("*.avro")) == before  # its manifest and manifest list are gone
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [0, 1]
    # the same race with pyiceberg's own transaction is silently re-applied: what icefloe must avoid
    plain = catalog.load_table("s.t")
    table.append(pa.table({"id": pa.array([3], pa.int64()), "_icefloe_event": ["w"], "_icefloe_source": ["w"]}))
    with plain.transaction() as again:
        again.append(pa.table({"id": pa.array([4], pa.int64()), "_icefloe_event": ["v"], "_icefloe_source": ["v"]}))
    assert sorted(r["id"] for r in catalog.load_table("s.t").scan().to_arrow().to_pylist()) == [0, 1, 3, 4]

"""What only the PostgreSQL ledger does: survive a dropped connection, read the server's clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.errors import LedgerUnavailableError, TransientError
from icefloe.ledger import open_ledger
from icefloe.ledger.postgres import PostgresLedger
from tests.ledger.conftest import SERVER
from tests.ledger.test_ledger_contract import _land


def _terminate(ledger: PostgresLedger) -> None:
    import psycopg

    pid = ledger._connection().execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.service
def test_a_dropped_connection_is_a_transient_error_and_the_next_call_reconnects(pg_uri: str, tmp_path: Path) -> None:
    ledger = open_ledger(pg_uri, tmp_path)
    assert isinstance(ledger, PostgresLedger)
    try:
        _land(ledger, key="a.csv")
        _terminate(ledger)
        with pytest.raises(LedgerUnavailableError) as lost:
            ledger.lease("w", limit=1, ttl=30)
        assert isinstance(lost.value, TransientError)
        (ev,) = ledger.lease("w", limit=1, ttl=30)  # a worker keeps going on a new connection
        _terminate(ledger)
        with pytest.raises(LedgerUnavailableError):
            ledger.events()
        ledger.mark_committed([ev.id], table="t.x", snapshot_id=1, stats={}, epochs={ev.id: ev.epoch})
        done = ledger.get(ev.id)
        assert done is not None and done.state == "committed"
    finally:
        ledger.close()


def test_a_server_that_is_not_there_is_a_transient_error(tmp_path: Path) -> None:
    """No server needed: nothing listens on port 1."""
    with pytest.raises(LedgerUnavailableError):
        open_ledger("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", tmp_path)


@pytest.mark.service
def test_lease_times_come_from_the_server_clock(pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    ledger = open_ledger(pg_uri, tmp_path)
    try:
        _land(ledger)
        monkeypatch.setattr(time, "time", lambda: 0.0)  # a client clock stuck in 1970
        (ev,) = ledger.lease("w", limit=1, ttl=30)
        assert ev.started_at is not None and ev.started_at > 1_600_000_000
        assert ev.lease_expires_at == pytest.approx(ev.started_at + 30)
    finally:
        ledger.close()


@pytest.mark.service
def test_a_project_with_a_postgresql_ledger_ingests_and_reports(pg_uri: str, tmp_path: Path) -> None:
    from icefloe import Project
    from tests.helpers import ORDERS, csv_file, make_project

    root = make_project(tmp_path / "p", {"orders": ORDERS}, ledger=pg_uri)
    with Project(root) as project:
        (first,) = project.ingest([csv_file(tmp_path / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1.00"])])
        (second,) = project.ingest([csv_file(tmp_path / "b.csv", "id,ts,amount", ["2,2026-01-01 00:00:00,2.00"])])
        assert (first.state, second.state) == ("committed", "committed")
        assert first.seq < second.seq and first.epoch == second.epoch == 1
        assert project.sql("select count(*) as n from sales.orders").to_pylist() == [{"n": 2}]
        (row,) = [r for r in project.status() if r["kind"] == "pipeline"]
        assert (row["committed"], row["backlog"]) == (2, 0)
    with Project(root) as again:  # another process would see the same events
        assert [e.key for e in again.ledger.events()] == [first.key, second.key]


@pytest.mark.service
@pytest.mark.parametrize("wakes_to", ["commit", "fail"])
def test_a_paused_worker_cannot_move_a_postgresql_ledger_back(pg_uri: str, tmp_path: Path, wakes_to: str) -> None:
    from tests.engine.test_paused_worker_loses_its_lease import paused_worker_wakes

    paused_worker_wakes(tmp_path, wakes_to, ledger=pg_uri)


def test_without_psycopg_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from icefloe.errors import NotInstalledError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(NotInstalledError, match=r"pip install 'icefloe\[postgres\]'"):
        open_ledger("postgresql://postgres@127.0.0.1:5432/x", tmp_path)

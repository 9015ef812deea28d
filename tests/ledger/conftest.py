"""A PostgreSQL database for this test run (`icefloe_test_<random>`, dropped at the end) and a
fresh schema in it per test, so ledger tests never see each other's rows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from icefloe.ledger import Ledger, open_ledger
from tests.conftest import require_service

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    name = f"icefloe_test_{secrets.token_hex(4)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{SERVER}/{name}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_uri(pg_database: str) -> str:
    """A ledger URI whose tables live in a schema of their own."""
    import psycopg

    schema = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(pg_database, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    # no fsync per commit: a test database need not survive a power cut, and it is 10x faster
    return f"{pg_database}?options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"


def ledger_uri(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "postgresql":
        return str(request.getfixturevalue("pg_uri"))
    return {"sqlite-file": "sqlite:///ledger.db", "sqlite-memory": "sqlite:///:memory:"}[kind]


BACKENDS = ["sqlite-file", "sqlite-memory", pytest.param("postgresql", marks=pytest.mark.service)]
# backends where two connections can share one ledger (a :memory: database is one connection's)
SHARED_BACKENDS = ["sqlite-file", pytest.param("postgresql", marks=pytest.mark.service)]


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The contract suite's ledger: every test runs once per backend."""
    led = open_ledger(ledger_uri(request.param, request), tmp_path)
    yield led
    led.close()


@pytest.fixture(params=SHARED_BACKENDS)
def shared_uri(request: pytest.FixtureRequest) -> str:
    """A ledger URI two connections (or processes) can open at once."""
    return ledger_uri(request.param, request)

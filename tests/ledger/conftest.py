"""A PostgreSQL database for this test run (`icefloe_test_<random>`, dropped at the end) and a
fresh schema in it per test, so ledger tests never see each other's rows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

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
    return f"{pg_database}?options=-csearch_path%3D{schema}"

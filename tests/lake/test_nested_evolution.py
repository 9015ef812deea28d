"""Nested NDJSON evolves: a struct gaining a field (at any depth, inside lists too) is a new column."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from icefloe import Project
from icefloe.errors import ConfigError
from icefloe.types import arrow_type
from tests.conftest import write
from tests.helpers import make_project


def _ndjson(path: Path, records: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def _project(tmp_path: Path, schema: dict[str, str] | None = None) -> Project:
    read: dict[str, Any] = {"format": "ndjson", **({"schema": schema} if schema else {})}
    return Project(make_project(tmp_path / "p", {"p": {"read": read, "write": {"table": "s.users"}}}))


def test_an_object_field_gaining_a_key_adds_a_nested_column(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = [{"id": 1, "user": {"name": "ann", "address": {"city": "Oslo"}}, "orders": [{"sku": "a1"}]}]
    second = [
        {
            "id": 2,
            "user": {"name": "bob", "email": "b@x.org", "address": {"city": "Rome", "zip": "00100"}},
            "orders": [{"sku": "b1", "qty": 3}, {"sku": "b2"}],
        }
    ]
    (one,) = project.ingest([_ndjson(tmp_path / "one.ndjson", first)])
    (two,) = project.ingest([_ndjson(tmp_path / "two.ndjson", second)])
    assert (one.state, two.state) == ("committed", "committed"), two.error
    rows = project.sql(
        "select id, user.name as name, user.email as email, user.address.zip as zip,"
        " [o.qty for o in orders] as qty from s.users order by id"
    ).to_pylist()
    assert rows == [
        {"id": 1, "name": "ann", "email": None, "zip": None, "qty": [None]},
        {"id": 2, "name": "bob", "email": "b@x.org", "zip": "00100", "qty": [3, None]},
    ]
    table = project.catalog.load_table("s.users")
    scanned = sorted(table.scan().to_arrow().select(["id", "user", "orders"]).to_pylist(), key=lambda r: r["id"])
    assert scanned[0]["user"] == {"name": "ann", "address": {"city": "Oslo", "zip": None}, "email": None}
    assert scanned[1]["orders"] == [{"sku": "b1", "qty": 3}, {"sku": "b2", "qty": None}]
    # the old fields kept their ids: a nested field was added, nothing was replaced
    assert table.schema().find_field("user.name").field_id == table.schemas()[0].find_field("user.name").field_id


def test_a_nested_type_change_that_is_not_a_promotion_is_still_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.ingest([_ndjson(tmp_path / "one.ndjson", [{"id": 1, "user": {"age": 30}}])])
    (bad,) = project.ingest([_ndjson(tmp_path / "two.ndjson", [{"id": 2, "user": {"age": "thirty"}}])])
    assert bad.state == "dead" and "not a safe promotion" in (bad.error or "")
    assert project.sql("select count(*) as n from s.users").to_pylist() == [{"n": 1}]


def test_schema_describes_nested_types_and_the_data_follows_it(tmp_path: Path) -> None:
    schema = {
        "id": "long",
        "user": "struct<name: string, Email: string>",
        "lines": "list<struct<sku: string, price: decimal(10,2)>>",
        "tags": "list<string>",
    }
    project = _project(tmp_path, schema)
    records = [{"id": 1, "user": {"name": "ann"}, "lines": [{"sku": "a", "price": 1.5}], "tags": ["x"]}]
    (event,) = project.ingest([_ndjson(tmp_path / "one.ndjson", records)])
    assert event.state == "committed", event.error
    table = project.catalog.load_table("s.users")
    assert str(table.schema().find_type("lines.element.price")) == "decimal(10, 2)"
    assert [f.name for f in table.schema().find_type("user").fields] == ["name", "Email"]  # type: ignore[attr-defined]
    rows = project.sql("select user.Email as email, lines[1].price as price, tags from s.users").to_pylist()
    assert rows == [{"email": None, "price": Decimal("1.50"), "tags": ["x"]}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("struct<name: string, Email: string>", pa.struct([("name", pa.large_string()), ("Email", pa.large_string())])),
        ("list<decimal(10, 2)>", pa.list_(pa.field("element", pa.decimal128(10, 2)))),
        (
            "LIST<struct<a: list<struct<b: long>>>>",
            pa.list_(pa.field("element", pa.struct([("a", pa.list_(pa.field("element", pa.struct([("b", pa.int64())]))))]))),
        ),
    ],
)
def test_nested_type_names(text: str, expected: pa.DataType) -> None:
    assert arrow_type(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("struct<a string>", "expected ':'"),
        ("list<int", "expected '>'"),
        ("struct<>", "expected a field name"),
        ("list<varchar>", "expected a type at 'varchar>'"),
        ("struct<a: int, a: long>", "'a' appears twice"),
        ("list<decimal(40,2)>", "precision must be 1..38"),
    ],
)
def test_bad_nested_type_names_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        arrow_type(text)


def test_a_key_a_declared_struct_lacks_is_inferred_not_dropped(tmp_path: Path) -> None:
    project = _project(tmp_path, {"id": "long", "user": "struct<name: string>", "lines": "list<struct<sku: string>>"})
    first = [{"id": 1, "user": {"name": "ann"}, "lines": [{"sku": "a"}]}]
    second = [{"id": 2, "user": {"name": "bob", "email": "b@x.org"}, "lines": [{"sku": "b", "qty": 2}]}]
    project.ingest([_ndjson(tmp_path / "one.ndjson", first)])
    (event,) = project.ingest([_ndjson(tmp_path / "two.ndjson", second)])
    assert event.state == "committed", event.error
    rows = project.sql("select id, user.email as email, lines[1].qty as qty from s.users order by id").to_pylist()
    assert rows == [{"id": 1, "email": None, "qty": None}, {"id": 2, "email": "b@x.org", "qty": 2}]

"""A JSON key that is null in every record of a file has no type of its own (Arrow infers `null`);
it fits whatever type the table's column has, at the top level and inside structs and lists."""

from __future__ import annotations

import json
from pathlib import Path

from icefloe import Project
from tests.helpers import make_project


def _land(root: Path, name: str, *records: dict) -> None:
    (root / "landing" / name).write_text("".join(json.dumps(r) + "\n" for r in records))


def test_null_only_keys_fit_the_tables_types(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"nest": {"read": {"format": "ndjson"}, "write": {"table": "t.nest"}}})
    project = Project(root)
    first = {"id": 1, "amount": 2.5, "user": {"uid": 7, "email": "a@x"}, "orders": [{"sku": "s", "qty": 1}]}
    _land(root, "a.ndjson", first)
    assert project.run(once=True).committed == 1
    _land(root, "b.ndjson", {"id": 2, "amount": None, "user": {"uid": None, "email": "b@x"}, "orders": None})
    _land(root, "c.ndjson", {"id": 3, "amount": 1, "user": None, "orders": [{"sku": "t", "qty": None}]})
    summary = project.run(once=True)
    assert (summary.committed, summary.dead) == (2, 0), project.dead_letters()
    got = project.sql(
        "select id, amount, user.uid as uid, user.email as email, orders is null as no_orders, orders[1].qty as qty"
        " from t.nest order by id"
    ).to_pylist()
    assert got == [
        {"id": 1, "amount": 2.5, "uid": 7, "email": "a@x", "no_orders": False, "qty": 1},
        {"id": 2, "amount": None, "uid": None, "email": "b@x", "no_orders": True, "qty": None},
        {"id": 3, "amount": 1.0, "uid": None, "email": None, "no_orders": False, "qty": None},
    ]
    types = {f.name: str(f.field_type) for f in project.catalog.load_table("t.nest").schema().fields}
    assert types["amount"] == "double" and types["user"] == "struct<8: uid: optional long, 9: email: optional string>"

"""A NULL list of structs stays NULL: pyiceberg 0.12 rebuilt such lists from their offsets alone and
wrote (and read) every NULL one as an empty list."""

from __future__ import annotations

import json
from pathlib import Path

from icefloe import Project
from tests.helpers import make_project

ITEMS = "list<struct<sku: string, price: decimal(10,2)>>"


def test_null_list_of_structs_is_not_an_empty_list(tmp_path: Path) -> None:
    pipeline = {
        "read": {"format": "ndjson", "schema": {"id": "long", "items": ITEMS, "tags": "list<string>"}},
        "write": {"table": "t.lists"},
    }
    root = make_project(tmp_path / "p", {"lists": pipeline})
    records = [
        {"id": 1, "items": [{"sku": "a", "price": 1.5}], "tags": ["x"]},
        {"id": 2, "items": None, "tags": None},
        {"id": 3, "items": [], "tags": []},
        {"id": 4},
    ]
    (root / "landing" / "l.ndjson").write_text("".join(json.dumps(r) + "\n" for r in records))
    project = Project(root)
    assert project.run(once=True).committed == 1
    got = project.sql("select id, items is null as n, len(items) as k, tags is null as tn from t.lists order by id")
    assert got.to_pylist() == [
        {"id": 1, "n": False, "k": 1, "tn": False},
        {"id": 2, "n": True, "k": None, "tn": True},
        {"id": 3, "n": False, "k": 0, "tn": False},
        {"id": 4, "n": True, "k": None, "tn": True},
    ]
    # what other engines see: the Parquet file itself holds the NULLs
    scan = project.catalog.load_table("t.lists").scan(selected_fields=("id", "items")).to_arrow()
    assert dict(zip(scan["id"].to_pylist(), scan["items"].to_pylist())) == {
        1: [{"sku": "a", "price": __import__("decimal").Decimal("1.50")}],
        2: None,
        3: [],
        4: None,
    }

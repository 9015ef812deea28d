"""A table can be partitioned by any column it can hold: `day(Order Date)`, `identity(a.b)`, `e-mail`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform

from icefloe import Project
from icefloe.errors import ConfigError
from icefloe.types import parse_partition
from tests.helpers import csv_file, make_project


def test_parse_partition_takes_names_iceberg_allows() -> None:
    assert parse_partition("day(Order Date)") == ("Order Date", DayTransform(), "Order Date_day")
    assert parse_partition(" bucket(4, e-mail) ") == ("e-mail", BucketTransform(4), "e-mail_bucket")
    assert parse_partition("identity(a.b)") == ("a.b", IdentityTransform(), "a.b")
    assert parse_partition("2nd") == ("2nd", IdentityTransform(), "2nd")
    with pytest.raises(ConfigError, match="bad partition"):
        parse_partition("day()")
    with pytest.raises(ConfigError, match="bad partition"):
        parse_partition("day(a, b, c)")


def test_upsert_partitioned_by_columns_with_spaces_and_dots(tmp_path: Path) -> None:
    schema = {"Order ID": "long", "Order Date": "timestamp", "a.b": "string", "unit-price": "decimal(12,2)"}
    pipeline = {
        "read": {"format": "csv", "schema": schema},
        "write": {"table": "t.mess", "mode": "upsert", "key": ["Order ID"], "partition": ["day(Order Date)", "a.b"]},
    }
    root = make_project(tmp_path / "p", {"mess": pipeline})
    header = "Order ID,Order Date,a.b,unit-price"
    csv_file(root / "landing" / "a.csv", header, ["1,2026-01-01 10:00:00,p,1.50", "2,2026-01-02 10:00:00,q,2"])
    project = Project(root)
    assert project.run(once=True).committed == 1
    csv_file(root / "landing" / "b.csv", header, ["2,2026-01-05 10:00:00,s,9.99"])
    assert project.run(once=True).committed == 1
    got = project.sql('select "Order ID" as id, "a.b" as ab, "unit-price" as p from t.mess order by 1').to_pylist()
    assert [(r["id"], r["ab"], str(r["p"])) for r in got] == [(1, "p", "1.50"), (2, "s", "9.99")]
    where = project.sql("""select count(*) as n from t.mess where "Order Date" >= '2026-01-05' and "a.b" = 's'""")
    assert where.to_pylist() == [{"n": 1}]
    assert [f.name for f in project.catalog.load_table("t.mess").spec().fields] == ["Order Date_day", "a.b"]

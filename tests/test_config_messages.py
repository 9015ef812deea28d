"""Config messages blame the right place: a route's own line, the env var or --set flag a value
came from, and the config line of a column that only the data could lack."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_USAGE
from icefloe.config import load_config
from icefloe.errors import ConfigError
from tests.cli.invoke import invoke
from tests.helpers import csv_file

CONFIG = """\
catalog: sqlite:///catalog.db
sources:
  landing: {type: folder, path: landing}
routes:
  - {source: landing, match: "*.csv", pipeline: orders}
  - source: landing
    match: "*.tsv"
    pipeline: [orders, ordres]
pipelines:
  orders:
    read: {format: csv}
    checks:
      - not_null: [amount]
    write:
      table: sales.orders
      mode: upsert
      key: [id]
"""


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    (tmp_path / "icefloe.yaml").write_text(text)
    return tmp_path


def test_a_route_to_an_unknown_pipeline_is_blamed_on_the_route(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path))
    assert "icefloe.yaml:8: routes.1.pipeline.1: route names unknown pipeline 'ordres'" in str(err.value)
    assert "(top)" not in str(err.value)


def test_an_env_value_is_blamed_on_the_variable(tmp_path: Path) -> None:
    root = _config(tmp_path, CONFIG.replace("ordres", "orders"))
    with pytest.raises(ConfigError) as err:
        load_config(root, environ={"ICEFLOE__PIPELINES__ORDERS__BATCH__MAX_ROWS": "lots"})
    message = str(err.value)
    assert "ICEFLOE__PIPELINES__ORDERS__BATCH__MAX_ROWS: pipelines.orders.batch.max_rows:" in message
    assert "icefloe.yaml:" not in message


def test_an_env_value_replacing_a_file_value_is_blamed_on_the_variable(tmp_path: Path) -> None:
    root = _config(tmp_path, CONFIG.replace("ordres", "orders"))
    with pytest.raises(ConfigError) as err:
        load_config(root, environ={"ICEFLOE__PIPELINES__ORDERS__WRITE__TABLE": "nodots"})
    assert "ICEFLOE__PIPELINES__ORDERS__WRITE__TABLE: pipelines.orders.write.table:" in str(err.value)


def test_a_set_flag_is_blamed_on_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _config(tmp_path, CONFIG.replace("ordres", "orders"))
    code, _, err = invoke(capsys, "status", "-p", str(root), "--set", "pipelines.orders.write.mode=upsrt")
    assert code == EXIT_USAGE
    assert "--set pipelines.orders.write.mode=upsrt: pipelines.orders.write.mode:" in err and "icefloe.yaml:" not in err


def test_a_missing_upsert_key_names_the_key_and_its_line(tmp_path: Path) -> None:
    project = Project(_config(tmp_path, CONFIG.replace("ordres", "orders").replace("    checks:\n      - not_null: [amount]\n", "")))
    (event,) = project.ingest([csv_file(tmp_path / "a.csv", "order_id,amount", ["1,2.50"])])
    assert event.state == "dead" and event.error is not None
    assert "the upsert key write.key names column 'id', which the file lacks" in event.error
    assert "icefloe.yaml:15" in event.error and "check names column" not in event.error


def test_a_check_on_an_inferred_column_the_file_lacks_names_the_check_line(tmp_path: Path) -> None:
    project = Project(_config(tmp_path, CONFIG.replace("ordres", "orders")))
    (event,) = project.ingest([csv_file(tmp_path / "a.csv", "id,price", ["1,2.50"])])
    assert event.state == "dead" and event.error is not None
    assert "landing:a.csv" in event.error and "check not_null names column 'amount'" in event.error
    assert "icefloe.yaml:13" in event.error


def test_a_partition_on_an_inferred_column_the_file_lacks_names_the_partition_line(tmp_path: Path) -> None:
    config = CONFIG.replace("ordres", "orders").replace("      mode: upsert\n      key: [id]\n", '      partition: ["day(ts)"]\n')
    project = Project(_config(tmp_path, config.replace("    checks:\n      - not_null: [amount]\n", "")))
    (event,) = project.ingest([csv_file(tmp_path / "a.csv", "id,amount", ["1,2.50"])])
    assert event.state == "dead" and event.error is not None
    assert "partition 'day(ts)' names column 'ts', which the file lacks" in event.error and "icefloe.yaml:14" in event.error
    # the file that has the column creates the table, partitioned as configured
    (event,) = project.ingest([csv_file(tmp_path / "b.csv", "id,ts", ["1,2026-01-01 10:00:00"])])
    assert event.state == "committed"
    assert [f.name for f in project.catalog.load_table("sales.orders").spec().fields] == ["ts_day"]

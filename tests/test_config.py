from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.config import load_config, parse_duration
from icefloe.errors import ConfigError
from icefloe.scaffold import EXAMPLE_CONFIG

BASE = """\
catalog: sqlite:///catalog.db
sources:
  landing: {type: folder, path: landing}
routes:
  - {source: landing, match: "*.csv", pipeline: orders}
pipelines:
  orders:
    read: {format: csv, schema: {id: long}}
    write: {table: sales.orders}
environments:
  production: {catalog: "postgresql://db/x"}
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "icefloe.yaml").write_text(text)
    return tmp_path


def test_example_config_from_init_is_valid(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, EXAMPLE_CONFIG))
    assert config.pipelines["orders"].write.mode == "upsert"
    assert config.pipelines["orders"].batch.max_wait == 0.5
    assert config.routes[0].pipeline == ["orders"]


def test_error_names_the_file_and_line_of_the_bad_value(tmp_path: Path) -> None:
    bad = BASE.replace("schema: {id: long}", "schema: {id: lung}")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, bad))
    assert "icefloe.yaml:8" in str(err.value) and "lung" in str(err.value)


def test_unknown_key_is_rejected_with_its_line(tmp_path: Path) -> None:
    bad = BASE.replace("    write: {table: sales.orders}", "    write: {table: sales.orders}\n    wrte: 1")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, bad))
    assert "icefloe.yaml:10" in str(err.value) and "wrte" in str(err.value)


def test_route_to_unknown_pipeline_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'"):
        load_config(_write(tmp_path, BASE.replace("pipeline: orders", "pipeline: nope")))


def test_upsert_without_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs key"):
        load_config(_write(tmp_path, BASE.replace("{table: sales.orders}", "{table: sales.orders, mode: upsert}")))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"icefloe.yaml:4: invalid YAML"):
        load_config(_write(tmp_path, "catalog: x\nsources:\n  a: b\n   c: d\n"))


def test_env_vars_override_the_file(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, BASE),
        environ={"ICEFLOE__CATALOG": "sqlite:///other.db", "ICEFLOE__PIPELINES__ORDERS__BATCH__MAX_ROWS": "7"},
    )
    assert config.catalog == "sqlite:///other.db"
    assert config.pipelines["orders"].batch.max_rows == 7


def test_flags_override_env_vars(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, BASE), environ={"ICEFLOE__CATALOG": "a"}, overrides={"catalog": "b"})
    assert config.catalog == "b"


def test_environment_overlay(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, BASE), env="production", environ={}).catalog == "postgresql://db/x"
    with pytest.raises(ConfigError, match="no environment 'staging'"):
        load_config(tmp_path, env="staging", environ={})


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="icefloe init"):
        load_config(tmp_path)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("2s", 2.0), ("1.5m", 90.0), (3, 3.0), ("1h", 3600.0)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_bad_partition_spec_is_rejected_at_load(tmp_path: Path) -> None:
    bad = BASE.replace("write: {table: sales.orders}", "write: {table: sales.orders, partition: [bucket(id)]}")
    with pytest.raises(ConfigError, match=r"icefloe.yaml:9.*needs a width"):
        load_config(_write(tmp_path, bad))


def test_maintenance_process_is_one_switch_for_all_tables(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, BASE + "maintenance: {process: false}\n"))
    assert config.maintenance.process is False and "process" not in config.maintenance.settings()
    per_table = BASE + "maintenance: {tables: {sales.orders: {process: false}}}\n"
    with pytest.raises(ConfigError, match="process is set for all tables"):
        load_config(_write(tmp_path, per_table))

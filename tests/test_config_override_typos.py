"""An `ICEFLOE__...` variable or `--set` flag naming a pipeline or source the file lacks says so
(and lists the ones it has), instead of only that the new, accidental one misses its fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.config import load_config
from icefloe.errors import ConfigError

CONFIG = """\
sources:
  landing: {type: folder, path: landing}
routes:
  - {source: landing, match: "*.csv", pipeline: orders}
pipelines:
  orders:
    read: {format: csv}
    write: {table: sales.orders}
  inventory:
    read: {format: csv}
    write: {table: sales.inventory}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "icefloe.yaml").write_text(CONFIG)
    return tmp_path


def test_env_var_naming_an_unknown_pipeline(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(project, environ={"ICEFLOE__PIPELINES__INVENTRY__BATCH__MAX_ROWS": "5"})
    message = info.value.message
    assert "ICEFLOE__PIPELINES__INVENTRY__BATCH__MAX_ROWS" in message
    assert "there is no pipeline 'inventry' in icefloe.yaml; it has: inventory, orders" in message


def test_set_flag_naming_an_unknown_source(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(project, environ={}, overrides={"sources": {"landng": {"settle": "1s"}}})
    assert "there is no source 'landng' in icefloe.yaml; it has: landing" in info.value.message


def test_overrides_of_known_names_keep_their_message(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(project, environ={"ICEFLOE__PIPELINES__ORDERS__BATCH__MAX_ROWS": "many"})
    assert "valid integer" in info.value.message and "there is no" not in info.value.message
    # a pipeline made whole by overrides is no typo
    whole = {"pipelines": {"extra": {"read": {"format": "csv"}, "write": {"table": "t.extra"}}}}
    assert "extra" in load_config(project, environ={}, overrides=whole).pipelines

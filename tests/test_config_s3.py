"""The s3 settings at load: a source of type s3, the shared `s3:` defaults, errors on their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.config import load_config
from icefloe.config.s3 import S3Settings, S3SourceConfig
from icefloe.errors import ConfigError
from icefloe.lake.catalog import io_properties


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "icefloe.yaml").write_text(text)
    return load_config(tmp_path / "icefloe.yaml")


def test_an_s3_source_takes_the_project_defaults_and_overrides_its_own(tmp_path: Path) -> None:
    config = _load(tmp_path, """
s3: {endpoint_url: "http://127.0.0.1:9000", region: eu-west-1, path_style: true, part_size: 16MB}
sources:
  lake: {type: s3, bucket: raw, prefix: /in/coming/, region: us-east-2, poll: 5s}
  local: {path: landing}
""")
    source = config.sources["lake"]
    assert isinstance(source, S3SourceConfig) and source.prefix == "in/coming/" and source.poll == 5.0
    merged = config.s3.merged(source)
    assert (merged.endpoint_url, merged.region, merged.path_style, merged.part_size) == (
        "http://127.0.0.1:9000", "us-east-2", True, 16 << 20,
    )  # fmt: skip
    assert config.sources["local"].type == "folder"  # no type: still a folder


def test_a_mistyped_s3_key_is_refused_on_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, "sources:\n  lake:\n    type: s3\n    bucket: raw\n    prefx: in\n")
    assert "icefloe.yaml:5: sources.lake.prefx" in str(refused.value)
    with pytest.raises(ConfigError, match="bare bucket name"):
        _load(tmp_path, "sources:\n  lake: {type: s3, bucket: 's3://raw/in'}\n")


def test_an_s3_warehouse_gets_the_same_settings_as_pyiceberg_fileio_properties() -> None:
    settings = S3Settings(
        endpoint_url="http://127.0.0.1:9000", region="eu-west-1", path_style=True,
        access_key_id="AK", secret_access_key="SK",  # type: ignore[arg-type]
    )  # fmt: skip
    props = io_properties("s3://bucket/warehouse", settings)
    assert props["s3.endpoint"] == "http://127.0.0.1:9000" and props["s3.region"] == "eu-west-1"
    assert (props["s3.access-key-id"], props["s3.secret-access-key"]) == ("AK", "SK")
    assert props["s3.force-virtual-addressing"] == "false"
    assert io_properties("file:///tmp/warehouse", settings) == {}
    assert "SK" not in repr(settings)  # a secret is not printed with the settings

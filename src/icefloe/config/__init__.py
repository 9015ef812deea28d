"""Typed project configuration: icefloe.yaml, then `ICEFLOE__SECTION__KEY` env vars, then flags.

- `models`: the pydantic models, one per section, and what each checks at load.
- `load`: reading the file, the environment and flags, with errors at `icefloe.yaml:LINE`.
- `origins`: where each value came from (a line, an env var, a flag), for those messages.
"""

from icefloe.config.load import load_config
from icefloe.config.models import (
    CONFIG_FILE,
    BatchConfig,
    MaintenanceConfig,
    PipelineConfig,
    ProjectConfig,
    ReadConfig,
    RetryConfig,
    RouteConfig,
    SourceConfig,
    WriteConfig,
    parse_duration,
    parse_size,
)

__all__ = [
    "CONFIG_FILE",
    "BatchConfig",
    "MaintenanceConfig",
    "PipelineConfig",
    "ProjectConfig",
    "ReadConfig",
    "RetryConfig",
    "RouteConfig",
    "SourceConfig",
    "WriteConfig",
    "load_config",
    "parse_duration",
    "parse_size",
]

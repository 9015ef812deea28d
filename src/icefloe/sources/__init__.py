"""Sources: where objects land. Each backend is one module behind `Source`; pick one by `type`."""

from __future__ import annotations

from pathlib import Path

from icefloe.config import SourceConfig
from icefloe.config.s3 import S3Settings, S3SourceConfig
from icefloe.errors import ConfigError
from icefloe.sources.base import Landed, ListPage, ObjectRef, Source

__all__ = ["Landed", "ListPage", "ObjectRef", "Source", "open_source"]


def open_source(name: str, config: SourceConfig | S3SourceConfig, root: Path, s3: S3Settings | None = None) -> Source:
    """`s3`: the project's `s3:` defaults, which an S3 source's own keys override."""
    if isinstance(config, SourceConfig) and config.type == "nats":
        from icefloe.sources.nats import NatsSource

        return NatsSource(name, config, root)
    if isinstance(config, SourceConfig):
        from icefloe.sources.folder import FolderSource

        return FolderSource(name, config, root)
    if config.type == "s3":
        from icefloe.sources.s3 import S3Source  # boto3 is imported only here (the s3 extra)

        return S3Source(name, config, s3)
    raise ConfigError(f"source {name!r}: unknown type {config.type!r}")

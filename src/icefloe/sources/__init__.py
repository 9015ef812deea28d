"""Sources: where objects land. Each backend is one module behind `Source`; pick one by `type`."""

from __future__ import annotations

from pathlib import Path

from icefloe.config import SourceConfig
from icefloe.errors import ConfigError
from icefloe.sources.base import Landed, ListPage, ObjectRef, Source

__all__ = ["Landed", "ListPage", "ObjectRef", "Source", "open_source"]


def open_source(name: str, config: SourceConfig, root: Path) -> Source:
    if config.type == "folder":
        from icefloe.sources.folder import FolderSource

        return FolderSource(name, config, root)
    if config.type == "nats":
        from icefloe.sources.nats import NatsSource

        return NatsSource(name, config, root)
    raise ConfigError(f"source {name!r}: unknown type {config.type!r}")

"""The lake: Iceberg tables through pyiceberg. Depends on pipelines' Arrow output, never on sources.

Its names load on first use: a module of this package that needs no pyiceberg (checking a
catalog URI at config load) must not bring the writer's imports with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icefloe.lake.catalog import open_catalog, warehouse_uri
    from icefloe.lake.writer import Staged, TableWriter, committed_event_ids

__all__ = ["open_catalog", "warehouse_uri", "Staged", "TableWriter", "committed_event_ids"]

_HOME = {"open_catalog": "catalog", "warehouse_uri": "catalog", "Staged": "writer", "TableWriter": "writer",
         "committed_event_ids": "writer"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)

"""Observability: status, traces and table history, read from the ledger and the catalog.

Its names load on first use: `icefloe dlq` or `status` must not import the table history's
pyiceberg with the package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icefloe.observe.status import status
    from icefloe.observe.tables import history, list_tables
    from icefloe.observe.trace import trace

__all__ = ["status", "trace", "history", "list_tables"]

_HOME = {"status": "status", "trace": "trace", "history": "tables", "list_tables": "tables"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)

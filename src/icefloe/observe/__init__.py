"""Observability: status, traces and table history, read from the ledger and the catalog."""

from icefloe.observe.status import status
from icefloe.observe.tables import history, list_tables
from icefloe.observe.trace import trace

__all__ = ["status", "trace", "history", "list_tables"]

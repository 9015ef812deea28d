"""Query: DuckDB over the Iceberg tables and the ledger. Reads the lake, never writes it."""

from icefloe.query.duck import QueryEngine, resolve_as_of

__all__ = ["QueryEngine", "resolve_as_of"]

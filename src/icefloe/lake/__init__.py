"""The lake: Iceberg tables through pyiceberg. Depends on pipelines' Arrow output, never on sources."""

from icefloe.lake.catalog import open_catalog, warehouse_uri
from icefloe.lake.writer import Staged, TableWriter, committed_event_ids

__all__ = ["open_catalog", "warehouse_uri", "Staged", "TableWriter", "committed_event_ids"]

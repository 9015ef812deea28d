"""Scan plans that outlive one query: a snapshot's files are listed once, each filter prunes in memory.

pyiceberg's `plan_files` reads the manifest list and every manifest on each call, and a query with
another literal (`where id = 7`, then `where id = 8`) is another call. A snapshot never changes,
so its data files (with their partition values, column bounds and delete files) are listed once
per table uuid + snapshot id, and a query's filter is then evaluated against that list the way
pyiceberg's planning does (partition projection, then column metrics). Pruning is only ever
inclusive: a file it keeps may hold no matching row, and DuckDB applies the whole WHERE anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyiceberg.exceptions import ResolveError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.visitors import expression_evaluator, inclusive_projection
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table

from icefloe.lake.compat import InclusiveMetricsEvaluator

__all__ = ["SNAPSHOTS_KEPT", "SnapshotFiles", "prune"]

# snapshots whose file lists are kept per engine; each entry is one DataFile per live file
SNAPSHOTS_KEPT = 16


@dataclass(frozen=True)
class _Listed:
    tasks: tuple[FileScanTask, ...]
    total: int  # data files in the snapshot, as its summary counts them


class SnapshotFiles:
    """The live data files of recently read snapshots, keyed by table uuid and snapshot id."""

    def __init__(self, kept: int = SNAPSHOTS_KEPT) -> None:
        self._kept = kept
        self._lists: OrderedDict[tuple[str, int], _Listed] = OrderedDict()
        self.listed = 0  # how many snapshots were listed from their manifests (the misses)

    def tasks(self, table: Table, snapshot_id: int) -> tuple[tuple[FileScanTask, ...], int]:
        """Every data file of the snapshot (with its delete files), and the snapshot's file count."""
        key = (str(table.metadata.table_uuid), snapshot_id)
        found = self._lists.get(key)
        if found is None:
            tasks = tuple(table.scan(snapshot_id=snapshot_id).plan_files())
            snapshot = table.snapshot_by_id(snapshot_id)
            summary = snapshot.summary if snapshot is not None else None
            total = int(summary["total-data-files"] or 0) if summary and summary["total-data-files"] else len(tasks)
            found = self._lists[key] = _Listed(tasks, total)
            self.listed += 1
        self._lists.move_to_end(key)
        while len(self._lists) > self._kept:
            self._lists.popitem(last=False)
        return found.tasks, found.total


def prune(table: Table, schema: Schema, tasks: tuple[FileScanTask, ...], row_filter: BooleanExpression) -> list[FileScanTask]:
    """The tasks whose file may hold rows matching `row_filter` (bound to `schema`): by partition
    values first, then by column bounds and null counts, as pyiceberg's planning prunes."""
    if row_filter == AlwaysTrue() or not tasks:
        return list(tasks)
    try:
        metrics = InclusiveMetricsEvaluator(schema, row_filter, True, False).eval
        partitions: dict[int, Callable[[Any], bool]] = {}
        for spec_id, spec in table.metadata.specs().items():
            projected = inclusive_projection(schema, spec, True)(row_filter)
            partitions[spec_id] = expression_evaluator(Schema(*spec.partition_type(schema).fields), projected, True)
    except (ValueError, TypeError, KeyError, ValidationError, ResolveError):
        return list(tasks)  # a filter that cannot be bound here prunes nothing: never wrong
    return [t for t in tasks if partitions[t.file.spec_id](t.file.partition) and metrics(t.file)]

"""Tables that several pipelines write.

Each pipeline keeps its own mode and key: its events commit through a `TableWriter` built from
its own `write:` config. A table's events still share one buffer, and commit in landing order:
the batch is cut into consecutive runs of events with the same write config, one commit each
(every snapshot carries its events' ids, so exactly-once holds run by run). Where one pipeline
on a table must commit in landing order (upsert, overwrite, replace_source), all of that
table's pipelines do, as one order group: a newer event of any of them waits for an older one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from icefloe.config import ProjectConfig, WriteConfig
from icefloe.ledger.base import Event

__all__ = ["in_runs", "order_groups", "pipeline_write", "table_write"]

T = TypeVar("T")


def _partition(config: ProjectConfig, table: str) -> list[str]:
    # config load refuses two different specs for one table, so the first one given is the table's
    return next((p.write.partition for p in config.pipelines.values() if p.write.table == table and p.write.partition), [])


def pipeline_write(config: ProjectConfig, pipeline: str) -> WriteConfig:
    """The pipeline's own write config, with its table's partition spec (whoever creates it)."""
    write = config.pipelines[pipeline].write
    return write.model_copy(update={"partition": _partition(config, write.table)})


def table_write(config: ProjectConfig, table: str) -> WriteConfig:
    """The config of the table-level writer (load, discard, maintenance): the first pipeline's."""
    return pipeline_write(config, next(name for name, p in config.pipelines.items() if p.write.table == table))


def order_groups(config: ProjectConfig, ordered: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(ordered pipelines, pipeline -> order group): a pipeline sharing a table with an ordered one
    is ordered too, and the group is the table."""
    tables = {config.pipelines[name].write.table for name in ordered if name in config.pipelines}
    shared = {name: p.write.table for name, p in config.pipelines.items() if p.write.table in tables}
    groups = {name: table for name, table in shared.items() if list(shared.values()).count(table) > 1}
    return list(dict.fromkeys([*ordered, *groups])), groups


def in_runs(items: list[tuple[Event, T]], key: Callable[[Event], object]) -> list[list[tuple[Event, T]]]:
    """Landing order (the ledger's sequence, then the landing time), cut where `key` changes (a
    stable sort: ties keep the order they came in)."""
    runs: list[list[tuple[Event, T]]] = []
    for item in sorted(items, key=lambda item: (item[0].seq, item[0].landed_at)):
        if runs and key(runs[-1][-1][0]) == key(item[0]):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs

"""Deduplication by key within the rows of a micro-batch."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["keep_by_key", "keep_last_by_key"]

_ROW = "__icefloe_row"


def keep_by_key(data: pa.Table, key: list[str], keep: str = "last") -> pa.Table:
    """One row per key, the first or last seen, preserving the original row order."""
    if data.num_rows == 0 or not key:
        return data
    missing = [k for k in key if k not in data.column_names]
    if missing:
        from icefloe.errors import DataError

        raise DataError(f"dedupe key column(s) missing from the data: {', '.join(missing)}")
    indexed = data.select(key).append_column(_ROW, pa.array(range(data.num_rows), pa.int64()))
    agg = "max" if keep == "last" else "min"
    picked = indexed.group_by(key, use_threads=False).aggregate([(_ROW, agg)])[f"{_ROW}_{agg}"]
    if len(picked) == data.num_rows:
        return data
    return data.take(pc.take(picked, pc.sort_indices(picked)))


def keep_last_by_key(data: pa.Table, key: list[str]) -> pa.Table:
    return keep_by_key(data, key, "last")

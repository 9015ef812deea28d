"""Matching for `lake.upsert`: which rows of a data file hold a batch's keys, and which changed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["arange", "differs", "flat", "lookup"]


def lookup(batch_keys: pa.Table, idx: pa.Array, keys: pa.Table) -> pa.Array:
    """Per row of `keys` (a file's key columns), the batch row (of `idx`) with that key, or null.

    `batch_keys` are the batch's key columns, its keys unique."""
    key = batch_keys.column_names
    subset = batch_keys.take(idx)
    if len(key) == 1:
        name = key[0]
        options = pc.SetLookupOptions(subset[name].combine_chunks(), skip_nulls=True)
        return idx.take(flat(pc.index_in(keys[name], options=options)))
    left = keys.select(key).append_column("__row", arange(keys.num_rows))
    right = subset.append_column("__idx", idx)
    pairs = left.join(right, keys=key, join_type="inner", use_threads=False)
    at = pc.index_in(arange(keys.num_rows), value_set=pairs["__row"])
    return flat(pairs["__idx"]).take(flat(at))


def differs(mine: pa.Table, theirs: pa.Table) -> pa.Array:
    """Row by row: does any column differ between the two (aligned, same-schema) tables?

    pyiceberg compares `as_py()` values with `!=`: null equals null, NaN differs from NaN."""
    result: pa.Array | None = None
    for name in mine.column_names:
        a, b = mine[name], theirs[name]
        try:
            ne = pc.or_(pc.fill_null(pc.not_equal(a, b), False), pc.not_equal(pc.is_null(a), pc.is_null(b)))
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # nested types: compare as Python
            ne = pa.array([x != y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)], pa.bool_())
        result = ne if result is None else pc.or_(result, ne)
    if result is None:  # only key columns: every matched row is equal
        return pa.repeat(False, mine.num_rows)
    return flat(result)


def flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def arange(n: int) -> pa.Array:
    # in Arrow, not from range(): building 100k Python ints is ~10 ms
    return pc.indices_nonzero(pa.repeat(pa.scalar(True), n)).cast(pa.int64())

"""Per-file pruning for `lake.upsert`: which batch keys a data file could hold, from its bounds."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
)
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import (
    BinaryType,
    DateType,
    DecimalType,
    IcebergType,
    IntegerType,
    LongType,
    PrimitiveType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

__all__ = ["PRUNING_TRANSFORMS", "BatchBounds"]

ORDERED = (IntegerType, LongType, DateType, TimeType, TimestampType, TimestamptzType, StringType, DecimalType, BinaryType)
AS_INT = {DateType: pa.int32(), TimeType: pa.int64(), TimestampType: pa.int64(), TimestamptzType: pa.int64()}
PRUNING_TRANSFORMS = (IdentityTransform, BucketTransform, TruncateTransform, YearTransform, MonthTransform, DayTransform, HourTransform)
IN_LIMIT = 200  # beyond this pyiceberg's metrics evaluator gives up on an In anyway


class BatchBounds:
    """The batch's key values in the form Iceberg bounds decode to, for per-file pruning."""

    def __init__(self, schema: Schema, batch: pa.Table, key: list[str]) -> None:
        self.fields = [schema.find_field(name) for name in key]
        self.batch, self.key = batch, key
        self.ordinal: dict[str, pa.Array] = {}
        for field in self.fields:
            if isinstance(field.field_type, ORDERED):
                column = batch[field.name].combine_chunks()
                cast = AS_INT.get(type(field.field_type))
                self.ordinal[field.name] = column.cast(cast) if cast is not None else column
        first = self.fields[0].name
        self.order: pa.Array | None = None
        self.sorted: list[Any] = []
        if first in self.ordinal:
            self.order = pc.sort_indices(self.ordinal[first]).cast(pa.int64())
            self.sorted = self.ordinal[first].take(self.order).to_pylist()
        self.all = pa.array(range(batch.num_rows), pa.int64())

    def coarse_filter(self) -> BooleanExpression:
        """A filter pyiceberg can plan with cheaply: few distinct values -> In, else a range."""
        expr: BooleanExpression = AlwaysTrue()
        for field in self.fields:
            if not isinstance(field.field_type, (IntegerType, LongType, StringType, DateType, TimestampType, TimestamptzType, DecimalType)):
                continue
            column = self.batch[field.name]
            if not len(column):
                continue
            distinct = pc.unique(column)
            if len(distinct) <= IN_LIMIT:
                part: BooleanExpression = In(field.name, distinct.to_pylist())  # type: ignore[call-arg, arg-type]
            else:
                bounds = pc.min_max(column)
                part = And(
                    GreaterThanOrEqual(field.name, bounds["min"].as_py()),  # type: ignore[call-arg, arg-type]
                    LessThanOrEqual(field.name, bounds["max"].as_py()),  # type: ignore[call-arg, arg-type]
                )
            expr = And(expr, part)
        return expr

    def _bound(self, data_file: DataFile, field_id: int, field_type: IcebergType, upper: bool) -> Any:
        found = (data_file.upper_bounds if upper else data_file.lower_bounds) or {}
        raw = found.get(field_id)
        return None if raw is None or not isinstance(field_type, PrimitiveType) else from_bytes(field_type, raw)

    def candidates(self, data_file: DataFile) -> pa.Array:
        idx = self.all
        if self.order is not None:
            first = self.fields[0]
            lo = self._bound(data_file, first.field_id, first.field_type, upper=False)
            hi = self._bound(data_file, first.field_id, first.field_type, upper=True)
            start = 0 if lo is None else bisect_left(self.sorted, lo)
            stop = len(self.sorted) if hi is None else bisect_right(self.sorted, hi)
            idx = self.order.slice(start, max(0, stop - start))
        for field in self.fields[1:]:
            if field.name not in self.ordinal or not len(idx):
                continue
            values = self.ordinal[field.name].take(idx)
            for upper, op in ((False, pc.greater_equal), (True, pc.less_equal)):
                bound = self._bound(data_file, field.field_id, field.field_type, upper)
                if bound is not None:
                    keep = op(values, pa.scalar(bound, values.type))
                    idx, values = idx.filter(keep), values.filter(keep)
        return idx

    def expected_hits(self, data_file: DataFile, candidates: int) -> float:
        """How many of `candidates` keys the file holds if its integer keys spread evenly; 0 if unknown."""
        first = self.fields[0]
        if first.name not in self.ordinal or not pa.types.is_integer(self.ordinal[first.name].type):
            return 0.0
        lo = self._bound(data_file, first.field_id, first.field_type, upper=False)
        hi = self._bound(data_file, first.field_id, first.field_type, upper=True)
        if lo is None or hi is None:
            return 0.0
        return candidates * data_file.record_count / (hi - lo + 1)

    def sort_key(self, data_file: DataFile) -> tuple[int, Any]:
        if self.order is None:
            return (0, 0)
        first = self.fields[0]
        lo = self._bound(data_file, first.field_id, first.field_type, upper=False)
        return (0, 0) if lo is None else (1, lo)

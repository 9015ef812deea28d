"""Pins the pyiceberg internal the query plan cache prunes with (`compat.InclusiveMetricsEvaluator`)."""

from __future__ import annotations

import inspect

from pyiceberg.conversions import to_bytes
from pyiceberg.expressions import EqualTo
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.typedef import Record
from pyiceberg.types import LongType, NestedField

from icefloe.lake import compat


def test_metrics_evaluator_takes_schema_filter_case_and_empty_files_and_evaluates_a_data_file() -> None:
    params = [p for p in inspect.signature(compat.InclusiveMetricsEvaluator.__init__).parameters if p != "self"]
    assert params == ["schema", "expr", "case_sensitive", "include_empty_files"]
    schema = Schema(NestedField(1, "id", LongType()))
    data_file = DataFile.from_args(
        content=DataFileContent.DATA, file_path="x.parquet", file_format=FileFormat.PARQUET, partition=Record(),
        record_count=10, file_size_in_bytes=100, lower_bounds={1: to_bytes(LongType(), 10)},
        upper_bounds={1: to_bytes(LongType(), 20)},
    )  # fmt: skip
    assert compat.InclusiveMetricsEvaluator(schema, EqualTo("id", 15), True, False).eval(data_file) is True
    assert compat.InclusiveMetricsEvaluator(schema, EqualTo("id", 25), True, False).eval(data_file) is False

"""Which Parquet column holds which table column: Iceberg's answer is the field id, never the name.

A Parquet file keeps the name its writer saw then: renamed since, sanitized (`Order ID` is
written as `Order_x20ID`), or dropped and re-added under the same name with a new id, whose old
values must not reappear. DuckDB's `read_parquet(schema=...)` maps top-level columns by field id
and casts each to the type given, which covers Iceberg's type promotions (int -> long,
float -> double, a wider decimal). It matches struct children by name, though, so a schema with a
struct anywhere is read through pyiceberg instead (`reader_problem` says so).
"""

from __future__ import annotations

import re

from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

__all__ = ["by_name", "duck_type", "field_id_schema", "reader_problem"]

_PRIMITIVES: dict[type, str] = {
    BooleanType: "BOOLEAN", IntegerType: "INTEGER", LongType: "BIGINT", FloatType: "FLOAT",
    DoubleType: "DOUBLE", DateType: "DATE", TimeType: "TIME", TimestampType: "TIMESTAMP",
    TimestamptzType: "TIMESTAMPTZ", StringType: "VARCHAR",
}  # fmt: skip


def duck_type(field_type: IcebergType) -> str | None:
    """The DuckDB type a file's column is cast to, or None where DuckDB cannot map it by id.

    Left out on purpose: structs (children matched by name), uuid / fixed / binary (how a file
    stores them varies by writer, and a wrong cast fails the query), nanosecond timestamps and
    v3 types (unknown, variant, geometry), which pyiceberg reads.
    """
    if isinstance(field_type, DecimalType):
        return f"DECIMAL({field_type.precision},{field_type.scale})"
    if isinstance(field_type, ListType):
        element = duck_type(field_type.element_type)
        return f"{element}[]" if element else None
    if isinstance(field_type, MapType):
        key, value = duck_type(field_type.key_type), duck_type(field_type.value_type)
        return f"MAP({key}, {value})" if key and value else None
    return _PRIMITIVES.get(type(field_type))


def reader_problem(table: Table, schema: Schema) -> str | None:
    """Why DuckDB cannot read this table's files by field id (then pyiceberg does), or None."""
    if table.properties.get(TableProperties.DEFAULT_NAME_MAPPING):
        # files added without field ids (add_files, migrated tables) are matched through this
        # name mapping, which only pyiceberg applies
        return "the table has a name mapping (files without field ids)"
    for field in schema.fields:
        if field.initial_default is not None:
            return f"column {field.name!r} has a default for rows written before it existed"
        if duck_type(field.field_type) is None:
            return f"column {field.name!r} has type {field.field_type}"
    return None


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def by_name(table: Table, schema: Schema) -> bool:
    """Can DuckDB read the files by column name, as written, and get the same columns?

    Only while the table has had one schema: then every file was written with these names and
    types (no rename, drop, re-add or promotion happened), and a name Parquet keeps verbatim
    (pyiceberg rewrites `Order ID` as `Order_x20ID`) is the name in the file. Primitive columns
    only. The mapping by field id costs DuckDB some 15% on a full scan, which this saves."""
    if len(table.schemas()) != 1 or schema.schema_id not in table.schemas():
        return False
    return all(_PLAIN_NAME.match(f.name) and f.field_type.is_primitive and duck_type(f.field_type) for f in schema.fields)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def field_id_schema(schema: Schema) -> str:
    """The `schema` argument of read_parquet: field id -> (column name, DuckDB type, NULL)."""
    entries = ", ".join(
        f"{f.field_id}: {{name: {_text(f.name)}, type: {_text(duck_type(f.field_type) or '')}, default_value: NULL}}"
        for f in schema.fields
    )
    return f"map {{{entries}}}"

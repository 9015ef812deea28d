"""Schema evolution rules: new columns and safe promotions apply, anything else is a SchemaError.

Safe: int -> long, float -> double, decimal(P,S) -> decimal(P',S) with P' >= P, string widths,
and a new field in a struct (at any depth, structs inside lists too), which is a new column of the
table in Iceberg's terms. Each of these applies inside structs and lists as at the top level.
Data narrower than the table (an int into a long column, an int into a double, a struct without
some of the table's fields) is cast on write.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction

from icefloe.errors import ConfigError, SchemaError
from icefloe.types import parse_partition

_META_PREFIX = "_icefloe_"  # the columns icefloe adds to every row (pipelines.runner.META_COLUMNS)

__all__ = ["schema_change", "merged_schema", "evolve_schema", "align_to_table", "nullable", "apply_partition_spec"]


def nullable(schema: pa.Schema) -> pa.Schema:
    """Every icefloe column is optional, so a later file may omit it."""
    return pa.schema([f.with_nullable(True).with_type(_normalize(f.type)) for f in schema])


def _normalize(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.large_binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pa.types.is_null(t):
        return pa.large_string()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        # the value field's name (`item` from Arrow, `element` from Iceberg) is not a difference
        return pa.large_list(pa.field("element", _normalize(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_normalize(f.type)).with_nullable(True) for f in t])
    return t


def _widen(table_t: pa.DataType, data_t: pa.DataType) -> pa.DataType | None:
    """The type the table column must have to hold both, or None if no safe one exists."""
    a, b = _normalize(table_t), _normalize(data_t)
    if pa.types.is_null(data_t) or a == b:
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64() if pa.int64() in (a, b) else a
    if pa.types.is_floating(a) and (pa.types.is_floating(b) or pa.types.is_integer(b)):
        return pa.float64() if pa.float64() in (a, b) else a
    if pa.types.is_decimal(a) and pa.types.is_decimal(b) and a.scale == b.scale:
        return a if a.precision >= b.precision else b
    if pa.types.is_decimal(a) and pa.types.is_integer(b):
        return a
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b) and (a.tz is None) == (b.tz is None):
        return a
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields = {f.name: f for f in a}  # the table's fields keep their places; new ones go last
        for field in data_t:  # not normalized: a field NULL in every record (type null) fits any type
            if field.name not in fields:
                fields[field.name] = field.with_type(_normalize(field.type)).with_nullable(True)
                continue
            wide = _widen(fields[field.name].type, field.type)
            if wide is None:
                return None
            fields[field.name] = fields[field.name].with_type(wide)
        return pa.struct(list(fields.values()))
    if pa.types.is_large_list(a) and pa.types.is_large_list(b):
        element = _widen(a.value_type, data_t.value_type)
        return None if element is None else pa.large_list(pa.field("element", element))
    return None


def merged_schema(
    current: pa.Schema | None, incoming: pa.Schema, table: str, *, evolution: str = "add_columns", source: str | None = None
) -> pa.Schema:
    """The schema that holds both, or SchemaError; used to vet each event of a batch in turn.

    `evolution` is the pipeline's `write.schema_evolution`: `add_columns` takes new columns (but
    never from data that shares no column with the table: that is a misread file, not a new
    shape), `strict` refuses any column the table lacks. `source` names the data in errors."""
    if current is None:
        return nullable(incoming)
    _check_overlap(current, incoming, table, source)
    existing = {f.name: f.type for f in current}
    fields = {f.name: f for f in nullable(current)}
    for raw, field in zip(incoming, nullable(incoming)):
        if field.name not in existing:
            fields[field.name] = field
            continue
        wide = _widen(existing[field.name], raw.type)  # raw: a column NULL in every row fits any type
        if wide is None:
            raise SchemaError(
                f"{table}: column {field.name!r} is {existing[field.name]} in the table but {field.type} in this data;"
                " that is not a safe promotion (fix the data or the read schema, then `icefloe dlq replay`)"
            )
        fields[field.name] = field.with_type(wide)
    merged = pa.schema(list(fields.values()))
    if evolution == "strict" and (added := _added(nullable(current), merged)):
        raise SchemaError(
            f"{table}: {source or 'this data'} has column(s) the table lacks: {', '.join(map(repr, added))}, and this"
            " pipeline's write.schema_evolution is strict (add them to the table, or set schema_evolution:"
            " add_columns, then `icefloe dlq replay`)"
        )
    return merged


def _data_columns(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if not name.startswith(_META_PREFIX)]


def _check_overlap(current: pa.Schema, incoming: pa.Schema, table: str, source: str | None) -> None:
    """Data that shares no column with the table would add all of its columns and fill none of
    the table's: the mark of a CSV read with the wrong delimiter, or a file routed to the wrong
    pipeline, never of a table growing."""
    mine, theirs = _data_columns(current), _data_columns(incoming)
    if mine and theirs and not set(mine) & set(theirs):
        raise SchemaError(
            f"{table}: {source or 'this data'} shares no column with the table; the table has"
            f" {', '.join(map(repr, mine))}, the file has {', '.join(map(repr, theirs))}. Is the delimiter right (a CSV split"
            " on the wrong one has a single column named like its header line), or is it routed to"
            " the wrong pipeline? Nothing was written."
        )


def _added(before: pa.Schema | pa.DataType, after: pa.Schema | pa.DataType, prefix: str = "") -> list[str]:
    """Dotted paths of the fields (nested ones too) `after` has and `before` lacks."""
    if isinstance(before, pa.Schema) or pa.types.is_struct(before):
        old = {f.name: f.type for f in before}
        paths: list[str] = []
        for field in after:
            if field.name not in old:
                paths.append(prefix + field.name)
            else:
                paths += _added(old[field.name], field.type, f"{prefix}{field.name}.")
        return paths
    if pa.types.is_large_list(before) and pa.types.is_large_list(after):
        return _added(before.value_type, after.value_type, f"{prefix}element.")
    return []


def schema_change(
    current: Schema, incoming: pa.Schema, table: str, *, evolution: str = "add_columns", source: str | None = None
) -> pa.Schema | None:
    """The incoming columns as the table must take them, if that changes the table; else None.

    Raises SchemaError when the data cannot be written without an unsafe change."""
    merged = merged_schema(current.as_arrow(), incoming, table, evolution=evolution, source=source)
    if merged == nullable(current.as_arrow()):
        return None
    # only the incoming columns (without the table's field ids) go to union_by_name
    return pa.schema([merged.field(name) for name in incoming.names])


def evolve_schema(tx: Transaction, current: Schema, incoming: pa.Schema, table: str, *, evolution: str = "add_columns") -> None:
    change = schema_change(current, incoming, table, evolution=evolution)
    if change is not None:
        with tx.update_schema() as update:
            update.union_by_name(change)


def align_to_table(data: pa.Table, schema: Schema) -> pa.Table:
    """Order, fill (with nulls) and cast columns to exactly the table's Arrow schema."""
    target = schema.as_arrow()
    columns = []
    for field in target:
        if field.name in data.column_names:
            columns.append(_conform(data[field.name], field.type))
        else:
            columns.append(pa.nulls(data.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=target)


def _conform(values: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """`values` cast to `target`, struct fields matched by name (a missing one is null)."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([_conform(chunk, target) for chunk in values.chunks], target)
    if values.type == target:
        return values
    if pa.types.is_struct(target) and pa.types.is_struct(values.type):
        names = {values.type.field(i).name for i in range(values.type.num_fields)}
        children = [
            _conform(values.field(f.name), f.type) if f.name in names else pa.nulls(len(values), f.type) for f in target
        ]
        return pa.StructArray.from_arrays(children, fields=list(target), mask=values.is_null() if values.null_count else None)
    nested = pa.types.is_list(values.type) or pa.types.is_large_list(values.type)
    if pa.types.is_large_list(target) and nested:
        # offsets index the whole child array (a slice keeps its parent's), so conform all of it
        elements = _conform(values.values, target.value_type)
        mask = values.is_null() if values.null_count else None
        return pa.LargeListArray.from_arrays(values.offsets.cast(pa.int64()), elements, type=target, mask=mask)
    return values.cast(target)


def apply_partition_spec(table: Table, specs: list[str]) -> None:
    columns = {f.name for f in table.schema().fields}
    with table.update_spec() as update:
        for spec in specs:
            column, transform, name = parse_partition(spec)
            if column not in columns:
                raise ConfigError(f"partition {spec!r}: no column {column!r} in {table.name()}")
            update.add_field(column, transform, name)

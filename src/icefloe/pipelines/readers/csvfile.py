"""The CSV (and TSV) reader: pyarrow's streaming CSV reader, with line-precise errors via `locate`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from icefloe.errors import DataError
from icefloe.pipelines.readers import locate
from icefloe.pipelines.readers.base import (
    Source,
    block_size,
    check_options,
    is_char,
    is_str_list,
    is_tz,
    option,
    register_reader,
    to_tz,
)

_CSV_OPTIONS = ("delimiter", "header", "null_values", "quote_char", "skip_rows")


def _read_csv(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, _CSV_OPTIONS, "csv")
    tsv = any(n.lower().removesuffix(".gz").endswith(".tsv") for n in (src.path, src.name))
    delimiter = option(options, "delimiter", "\t" if tsv else ",", is_char, "a single character")
    header = option(options, "header", True, lambda v: isinstance(v, bool), "true or false")
    quote = option(options, "quote_char", '"', lambda v: not v or is_char(v), "a single character or false") or None
    nulls = option(options, "null_values", ["", "NULL", "null"], is_str_list, "a list of strings")
    skip = option(options, "skip_rows", 0, lambda v: type(v) is int and v >= 0, "a non-negative integer")

    keys = list(schema)

    def final_name(index: int, name: str) -> str:
        return name if header or index >= len(keys) else keys[index]

    # timestamptz is read as text so that values without an offset can be taken as UTC
    def wanted(name: str) -> pa.DataType | None:
        dtype = schema.get(name)
        return pa.large_string() if dtype is not None and is_tz(dtype) else dtype

    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote or False, newlines_in_values=True)
    convert_kw = {"null_values": nulls, "strings_can_be_null": True, "quoted_strings_can_be_null": True}
    column_types = {(n if header else f"f{i}"): wanted(n) for i, n in enumerate(keys) if wanted(n) is not None}
    block = block_size(batch_rows, 64)
    read = pacsv.ReadOptions(block_size=block, skip_rows=skip, autogenerate_column_names=not header)
    inferred: dict[str, pa.DataType] = {}

    def finish(table: Any, names: list[str]) -> Any:
        table = table.rename_columns(names)
        for i, name in enumerate(names):
            if name in schema and is_tz(schema[name]):
                table = table.set_column(i, name, to_tz(table.column(i), schema[name]))
        return table

    def make_check(file_names: list[str]) -> tuple[locate.Check, dict[int, Any]]:
        names = [final_name(i, n) for i, n in enumerate(file_names)]
        types = {i: wanted(n) or inferred.get(n) for i, n in enumerate(names)}
        types = {i: t for i, t in types.items() if t is not None and not pa.types.is_binary(t)}
        convert = pacsv.ConvertOptions(column_types={f"f{i}": t for i, t in types.items()}, **convert_kw)
        check = locate.csv_checker(parse, convert, lambda table: finish(table, names))
        hint = " (inferred from the start of the file; declare the column in the schema)"
        return check, {i: schema.get(names[i]) or f"{t}{hint}" for i, t in types.items()}

    def fail(exc: Exception) -> DataError:
        locate.locate_csv(
            src, delimiter=delimiter, quote_char=quote, header=header, skip_rows=skip, make_check=make_check
        )
        return src.error(f"cannot read CSV: {exc}")

    with src.open() as stream:
        try:
            reader = pacsv.open_csv(
                stream, read_options=read, parse_options=parse,
                convert_options=pacsv.ConvertOptions(column_types=column_types, **convert_kw),
            )
        except pa.ArrowException as exc:
            raise fail(exc) from exc
        names = [final_name(i, n) for i, n in enumerate(reader.schema.names)]
        inferred.update(zip(names, reader.schema.types))
        # undeclared columns holding invalid UTF-8 are inferred as binary rather than failing
        if any(pa.types.is_binary(t) for n, t in inferred.items() if n not in schema):
            raise fail(ValueError("invalid UTF-8"))
        while True:
            try:
                batch = reader.read_next_batch()
                batch = finish(batch, names)
            except StopIteration:
                return
            except pa.ArrowException as exc:
                raise fail(exc) from exc
            yield batch


register_reader("csv", _read_csv, (".csv", ".tsv"), options=_CSV_OPTIONS)

"""The CSV (and TSV) reader: pyarrow's streaming CSV reader, with line-precise errors via `locate`.

The fast path stays pyarrow's; what pyarrow accepts silently but is almost always a broken file
is caught by cheap checks on what it parsed, and only then is the file re-read slowly to name the
line: a quoted value holding a line break (a quote never closed swallows the rest of the file into
one value) unless `newlines_in_values`, a quote still open at the end of the file, a header naming
a column twice (or two names differing only in case), and an unnamed column holding values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from icefloe.errors import DataError
from icefloe.pipelines.formats import CSV_OPTIONS, csv_options
from icefloe.pipelines.readers import locate
from icefloe.pipelines.readers.base import Source, block_size, is_tz, register_reader, to_tz
from icefloe.pipelines.readers.csvblocks import BlockReader, parse_workers
from icefloe.pipelines.readers.csvstream import Decoded, EndsLine, is_utf8


def _read_csv(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    tsv = any(n.lower().removesuffix(".gz").endswith(".tsv") for n in (src.path, src.name))
    opts = csv_options(options, tsv)
    delimiter, header, quote, nulls, skip = opts.delimiter, opts.header, opts.quote, opts.nulls, opts.skip
    newlines, encoding, formats = opts.newlines, opts.encoding, opts.formats
    text = src if is_utf8(encoding) else Decoded(src, encoding)  # what pyarrow and `locate` both read

    keys = list(schema)

    def final_name(index: int, name: str) -> str:
        return name if header or index >= len(keys) else keys[index]

    # timestamptz is read as text so that values without an offset can be taken as UTC
    def wanted(name: str) -> pa.DataType | None:
        dtype = schema.get(name)
        return pa.large_string() if dtype is not None and is_tz(dtype) else dtype

    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote or False, newlines_in_values=newlines)
    convert_kw: dict[str, Any] = {"null_values": nulls, "strings_can_be_null": True, "quoted_strings_can_be_null": True}
    if formats:
        convert_kw["timestamp_parsers"] = formats
    column_types = {(n if header else f"f{i}"): wanted(n) for i, n in enumerate(keys) if wanted(n) is not None}
    block = block_size(batch_rows, 64)
    read = pacsv.ReadOptions(block_size=block, skip_rows=skip, autogenerate_column_names=not header)
    inferred: dict[str, pa.DataType] = {}

    def finish(table: Any, names: list[str]) -> Any:
        keep = [i for i, name in enumerate(names) if name.strip()]
        for i in sorted(set(range(len(names))) - set(keep)):
            # a trailing delimiter gives an unnamed, empty column: dropped; one holding data is not
            if _holds_values(table.column(i)):
                raise pa.ArrowInvalid(f"column {i + 1} has no name in the header but holds a value")
        if len(keep) < len(names):
            table = table.select(keep)
            names = [names[i] for i in keep]
        table = table.rename_columns(names)
        for i, name in enumerate(names):
            if name in schema and is_tz(schema[name]):
                table = table.set_column(i, name, _parse_tz(table.column(i), schema[name], formats))
        return table

    def make_check(file_names: list[str]) -> tuple[locate.Check, dict[int, Any]]:
        names = [final_name(i, n) for i, n in enumerate(file_names)]
        types = {i: wanted(n) or inferred.get(n) for i, n in enumerate(names)}
        types = {i: t for i, t in types.items() if t is not None and not pa.types.is_binary(t)}
        convert = pacsv.ConvertOptions(column_types={f"f{i}": t for i, t in types.items()}, **convert_kw)
        check = locate.csv_checker(parse, convert, lambda table: finish(table, names))
        hint = " (inferred from the start of the file; declare the column in the schema)"
        return check, {i: schema.get(names[i]) or f"{t}{hint}" for i, t in types.items()}

    def find() -> None:
        locate.locate_csv(
            text, delimiter=delimiter, quote_char=quote, header=header, skip_rows=skip, make_check=make_check,
            newlines_in_values=newlines,
        )  # fmt: skip

    def fail(exc: Exception) -> DataError:
        find()
        return src.error(f"cannot read CSV: {exc}")

    convert = pacsv.ConvertOptions(column_types=column_types, **convert_kw)
    workers = parse_workers()
    # several blocks parse at once where a line break always ends a row; a file of a couple of
    # blocks is not worth the threads
    blocks = workers > 1 and not newlines and not skip and not src.gzip and src.data is None and text is src
    blocks = blocks and src.file_size() > 2 * block
    with EndsLine(text.open()) as stream, contextlib.ExitStack() as stack:
        try:
            if blocks:
                reader: Any = stack.enter_context(contextlib.closing(BlockReader(stream, block, header, parse, convert, workers)))
            else:
                reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowException as exc:
            if "Empty CSV file" in str(exc) and _blank(text, skip):
                return  # nothing but blank lines: zero rows, like a 0-byte file
            raise fail(exc) from exc
        names = [final_name(i, n) for i, n in enumerate(reader.schema.names)]
        inferred.update(zip(names, reader.schema.types))
        if quote and not newlines and any("\n" in n or "\r" in n for n in names):
            raise fail(ValueError("a quoted header name holds a line break"))
        if header:
            _check_header(src, names, line=skip + 1)
        # undeclared columns holding invalid UTF-8 are inferred as binary rather than failing
        if any(pa.types.is_binary(t) for n, t in inferred.items() if n not in schema):
            raise fail(ValueError("invalid UTF-8"))
        last = None
        while True:
            try:
                batch = reader.read_next_batch()
                if quote and not newlines and _breaks_line(batch.columns):
                    raise fail(ValueError("a quoted value holds a line break"))
                last = batch if batch.num_rows else last
                batch = finish(batch, names)
            except StopIteration:
                break
            except pa.ArrowException as exc:
                raise fail(exc) from exc
            yield batch
    # a quote open at the end of the file makes the last value (or header name) run to the end,
    # line break and all; only then is the file re-read, to tell that from a value ending in one
    tail = last.column(last.num_columns - 1) if last is not None else pa.array(names[-1:])
    if quote and newlines and _ends_line(tail):
        find()


def _check_header(src: Source, names: list[str], line: int) -> None:
    # Iceberg resolves names case-insensitively in places and DuckDB always does: `id` and `ID`
    # would read as one column, the second hiding the first
    seen: dict[str, str] = {}
    for name in names:
        if not name.strip():
            continue
        other = seen.setdefault(name.casefold(), name)
        if names.count(name) > 1:
            raise src.error(f"the header names column {name!r} twice; rename one", line=line)
        if other != name:
            raise src.error(
                f"the header has columns {other!r} and {name!r}, which differ only in case; DuckDB (and "
                "Iceberg in places) match names regardless of case, so one would hide the other: rename one",
                line=line,
            )


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype)


def _breaks_line(columns: list[pa.Array]) -> bool:
    for column in columns:
        if not _is_text(column.type) or column.buffers()[2] is None:
            continue
        # a search of the raw value bytes (memchr speed); the exact kernel confirms a hit
        data = column.buffers()[2].to_pybytes()
        if (b"\n" in data or b"\r" in data) and any(
            pc.any(pc.match_substring(column, nl)).as_py() for nl in ("\n", "\r")
        ):
            return True
    return False


def _ends_line(column: pa.Array) -> bool:
    value = column[len(column) - 1].as_py() if len(column) and _is_text(column.type) else None
    return isinstance(value, (str, bytes)) and value[-1:] in ("\n", "\r", b"\n", b"\r")


def _holds_values(column: Any) -> bool:
    if pa.types.is_null(column.type):
        return False
    if _is_text(column.type):
        return bool(pc.max(pc.binary_length(column)).as_py() or 0)
    return column.null_count < len(column)


def _parse_tz(column: Any, dtype: pa.DataType, formats: list[str]) -> Any:
    if not formats:
        return to_tz(column, dtype)
    # each format in turn; a value no format reads is an error, never a NULL
    parsed = [pc.cast(pc.strptime(column, format=f, unit="us", error_is_null=True), dtype) for f in formats]
    result = pc.coalesce(*parsed) if len(parsed) > 1 else parsed[0]
    if result.null_count > column.null_count:
        bad = pc.and_(pc.is_null(result), pc.is_valid(column))
        value = pc.filter(column, bad)[0].as_py()
        raise pa.ArrowInvalid(f"timestamp {value!r} matches none of the timestamp_format {formats}")
    return result


def _blank(text: Any, skip: int) -> bool:
    with text.open() as stream:
        for lineno, line in enumerate(stream, 1):
            if lineno > skip and line.strip(b"\r\n"):
                return False
    return True


register_reader("csv", _read_csv, (".csv", ".tsv"), options=CSV_OPTIONS, check=csv_options, prefetch=True)

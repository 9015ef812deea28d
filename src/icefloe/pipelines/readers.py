"""Read a landed file as a stream of Arrow record batches, with bounded memory.

Formats are looked up in `READERS`; add one with `register_reader`. Whatever the format, every batch
has at most `batch_rows` rows, strings are `large_string`, declared schema columns have exactly the
declared type, and declared columns missing from the file are added as all-null (schemas evolve,
old files stay readable). Columns that are not declared are inferred; for CSV and NDJSON pyarrow
fixes their types from the first block of the file, so a column that changes type later fails with
a line-precise DataError asking for it to be declared.

Every problem with the input is a DataError naming the file and, where possible, the 1-based line.
Gzip is transparent (by name or by magic bytes) and decompressed as a stream.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from icefloe.errors import ConfigError, DataError
from icefloe.pipelines import locate
from icefloe.types import arrow_type

__all__ = ["READERS", "ReaderFn", "Source", "check_options", "detect_format", "read_batches", "register_reader"]

ReaderFn = Callable[["Source", dict[str, pa.DataType], dict[str, Any], int], Iterator[pa.RecordBatch]]
"""`fn(source, schema, options, batch_rows)`; may yield any batch size and plain `string` columns."""

READERS: dict[str, ReaderFn] = {}
_EXTENSIONS: dict[str, str] = {}
_MiB = 1 << 20


def register_reader(name: str, fn: ReaderFn, extensions: Sequence[str] = ()) -> None:
    READERS[name] = fn
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = name


def detect_format(name: str) -> str | None:
    base = name.lower()
    if base.endswith(".gz"):
        base = base[:-3]
    _, ext = os.path.splitext(base)
    return _EXTENSIONS.get(ext)


@dataclass(frozen=True)
class Source:
    """The file a reader reads. `open()` gives the decompressed bytes; gzip damage raises DataError."""

    path: str
    name: str
    gzip: bool
    data: bytes | None = None  # in-memory content, used to re-read a parsed JSON document

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        raw = open(self.path, "rb")  # the caller closes the returned stream, which closes this
        if not self.gzip:
            return raw
        return io.BufferedReader(_GzipStream(raw, self.name), buffer_size=_MiB)

    def error(self, message: str, **where: Any) -> DataError:
        return DataError(message, file=self.name, **where)


class _GzipStream(io.RawIOBase):
    # Raised from inside read() so the error is the same whichever reader (or pyarrow) is reading.
    def __init__(self, raw: BinaryIO, name: str) -> None:
        super().__init__()
        self._raw, self._name = raw, name
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._gz.read(len(buffer))
        except EOFError as exc:
            raise DataError("truncated gzip stream", file=self._name, offset=self._raw.tell()) from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"corrupt gzip stream: {exc}", file=self._name, offset=self._raw.tell()) from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
            self._raw.close()
        super().close()


def read_batches(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    schema: dict[str, pa.DataType] | None = None,
    options: dict | None = None,
    batch_rows: int = 65536,
    display_name: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream `path` as batches of at most `batch_rows` rows (see the module docstring).

    Errors can surface after some batches were yielded; callers treat the file as a whole.
    """
    path = os.fspath(path)
    name = display_name or path
    fmt = fmt or detect_format(path) or (detect_format(display_name) if display_name else None)
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {name}; set read.format ({', '.join(sorted(READERS))})")
    reader = READERS.get(fmt)
    if reader is None:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(sorted(READERS))}")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be at least 1, got {batch_rows}")
    types = {col: arrow_type(t) if isinstance(t, str) else t for col, t in (schema or {}).items()}
    return _batches(reader, path, name, types, dict(options or {}), batch_rows)


def _batches(reader: ReaderFn, path: str, name: str, schema: dict, options: dict, batch_rows: int):
    with open(path, "rb") as raw:
        magic = raw.read(2)
    src = Source(path, name, gzip=magic == b"\x1f\x8b" or path.lower().endswith(".gz") or name.lower().endswith(".gz"))
    with src.open() as stream:
        if not stream.read(1):
            raise src.error("file is empty")
    row = 0
    for batch in reader(src, schema, options, batch_rows):
        batch = _conform(batch, schema, src, row)
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)
        row += batch.num_rows


def _conform(batch: pa.RecordBatch, schema: dict[str, pa.DataType], src: Source, row: int) -> pa.RecordBatch:
    arrays, names = [], []
    for field, column in zip(batch.schema, batch.columns):
        target = schema.get(field.name)
        target = _large(field.type) if target is None else target
        if column.type != target:
            column = _cast(column, target, field.name, src, row)
        arrays.append(column)
        names.append(field.name)
    for name, dtype in schema.items():
        if name not in names:
            arrays.append(pa.nulls(batch.num_rows, dtype))
            names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _large(dtype: pa.DataType) -> pa.DataType:
    """The same type with every `string` inside it widened, so batches of any file concatenate."""
    if pa.types.is_string(dtype):
        return pa.large_string()
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_large(f.type)) for f in dtype])
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        make = pa.list_ if pa.types.is_list(dtype) else pa.large_list
        return make(dtype.value_field.with_type(_large(dtype.value_type)))
    return dtype


def _cast(column: pa.Array, target: pa.DataType, name: str, src: Source, row: int) -> pa.Array:
    def check(values: Any) -> Exception | None:
        try:
            pc.cast(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            return exc
        return None

    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        hit = locate.first_failing(column, check)
        where = f" (row {row + hit[0] + 1}, value {column[hit[0]].as_py()!r})" if hit else ""
        raise src.error(f"column {name!r}: cannot convert {column.type} to {target}{where}: {exc}") from exc


def check_options(options: dict[str, Any], allowed: Sequence[str], fmt: str) -> None:
    for key in options:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ConfigError(f"unknown {fmt} read option {key!r}; known: {known}")


def _block_size(batch_rows: int, bytes_per_row: int) -> int:
    # a block is what pyarrow parses (and infers types from) at once: big enough to hold any
    # sane row, small enough to keep memory flat
    return max(_MiB, min(32 * _MiB, batch_rows * bytes_per_row))


# --- CSV ----------------------------------------------------------------------------------------

_CSV_OPTIONS = ("delimiter", "header", "null_values", "quote_char", "skip_rows")


def _read_csv(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, _CSV_OPTIONS, "csv")
    tsv = any(n.lower().removesuffix(".gz").endswith(".tsv") for n in (src.path, src.name))
    delimiter = _option(options, "delimiter", "\t" if tsv else ",", _is_char, "a single character")
    header = _option(options, "header", True, lambda v: isinstance(v, bool), "true or false")
    quote = _option(options, "quote_char", '"', lambda v: not v or _is_char(v), "a single character or false") or None
    nulls = _option(options, "null_values", ["", "NULL", "null"], _is_str_list, "a list of strings")
    skip = _option(options, "skip_rows", 0, lambda v: type(v) is int and v >= 0, "a non-negative integer")

    keys = list(schema)

    def final_name(index: int, name: str) -> str:
        return name if header or index >= len(keys) else keys[index]

    # timestamptz is read as text so that values without an offset can be taken as UTC
    def wanted(name: str) -> pa.DataType | None:
        dtype = schema.get(name)
        return pa.large_string() if dtype is not None and _is_tz(dtype) else dtype

    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote or False, newlines_in_values=True)
    convert_kw = {"null_values": nulls, "strings_can_be_null": True, "quoted_strings_can_be_null": True}
    column_types = {(n if header else f"f{i}"): wanted(n) for i, n in enumerate(keys) if wanted(n) is not None}
    block = _block_size(batch_rows, 64)
    read = pacsv.ReadOptions(block_size=block, skip_rows=skip, autogenerate_column_names=not header)
    inferred: dict[str, pa.DataType] = {}

    def finish(table: Any, names: list[str]) -> Any:
        table = table.rename_columns(names)
        for i, name in enumerate(names):
            if name in schema and _is_tz(schema[name]):
                table = table.set_column(i, name, _to_tz(table.column(i), schema[name]))
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


def _option(options: dict, key: str, default: Any, valid: Callable[[Any], bool], expected: str) -> Any:
    value = options.get(key, default)
    if not valid(value):
        raise ConfigError(f"csv read option {key!r} must be {expected}, got {value!r}")
    return value


def _is_char(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 1


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _is_tz(dtype: pa.DataType) -> bool:
    return pa.types.is_timestamp(dtype) and dtype.tz is not None


def _to_tz(column: Any, dtype: pa.DataType) -> Any:
    has_zone = pc.match_substring_regex(column, r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")
    as_utc = pc.binary_join_element_wise(column, pa.scalar("Z", column.type), pa.scalar("", column.type))
    return pc.cast(pc.if_else(has_zone, column, as_utc), dtype)


# --- JSON ---------------------------------------------------------------------------------------


def _read_ndjson(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, (), "ndjson")
    block = _block_size(batch_rows, 256)
    declared = pa.schema([pa.field(n, t) for n, t in schema.items()])
    parse = pajson.ParseOptions(explicit_schema=declared if schema else None, unexpected_field_behavior="infer")
    strict = pajson.ParseOptions(explicit_schema=declared, unexpected_field_behavior="ignore")

    def check(lines: Sequence[str]) -> Exception | None:
        try:
            pajson.read_json(io.BytesIO("\n".join(lines).encode()), parse_options=strict)
        except pa.ArrowException as exc:
            return exc
        return None

    with src.open() as stream:
        try:
            for batch in _json_blocks(stream, block, parse):
                batch.validate(full=True)  # pyarrow's JSON parser does not check UTF-8 itself
                yield batch
        except pa.ArrowException as exc:
            locate.locate_ndjson(src, block_size=block, declared=list(schema), check=check)
            raise src.error(f"cannot read NDJSON: {exc}") from exc


def _json_blocks(stream: BinaryIO, block: int, parse: Any) -> Iterator[pa.RecordBatch]:
    if hasattr(pajson, "open_json"):  # pyarrow >= 19
        try:
            reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=block), parse_options=parse)
        except pa.ArrowInvalid as exc:
            if "Empty JSON" in str(exc):  # only whitespace: no rows, not an error
                return
            raise
        yield from reader
        return
    # older pyarrow: parse line-aligned chunks, with the first chunk fixing the columns as open_json would
    carry = b""
    while True:
        data = stream.read(block)
        cut = len(carry + data) if not data else (carry + data).rfind(b"\n") + 1
        chunk, carry = (carry + data)[:cut], (carry + data)[cut:]
        if chunk.strip():
            table = pajson.read_json(io.BytesIO(chunk), parse_options=parse)
            parse = pajson.ParseOptions(explicit_schema=table.schema, unexpected_field_behavior="error")
            yield from table.to_batches()
        if not data:
            return


def _read_json(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A JSON document (array of objects, or one object). Not streaming: the document is parsed whole.

    A `.json` file that holds one object per line is read as NDJSON instead, which does stream.
    """
    check_options(options, (), "json")
    with src.open() as stream:
        first = b""
        while not first.strip():
            first = stream.readline(_MiB)
            if not first:
                break
    if _is_object_line(first):
        yield from _read_ndjson(src, schema, options, batch_rows)
        return
    with src.open() as stream:
        try:
            with io.TextIOWrapper(stream, encoding="utf-8") as text:
                document = json.load(text)
        except UnicodeDecodeError as exc:
            with src.open() as again:
                for _ in locate.iter_lines(again, src.name):
                    pass
            raise src.error("invalid UTF-8") from exc
        except json.JSONDecodeError as exc:
            raise src.error(f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno) from exc
    records = document if isinstance(document, list) else [document]
    for index, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise src.error(f"record {index}: expected a JSON object, got {type(record).__name__}")
    lines = Source(src.path, src.name, gzip=False, data="\n".join(map(json.dumps, records)).encode())
    try:
        yield from _read_ndjson(lines, schema, options, batch_rows)
    except DataError as exc:
        # line numbers of the re-serialised document are record numbers, not lines of the file
        where = f"record {exc.line}: " if exc.line is not None else ""
        raise src.error(where + exc.message) from exc


def _is_object_line(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return False


# --- Parquet ------------------------------------------------------------------------------------


def _read_parquet(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, (), "parquet")
    with contextlib.ExitStack() as stack:
        target: Any = src.path
        if src.gzip:  # parquet needs random access: decompress to disk, not to memory
            target = stack.enter_context(tempfile.TemporaryFile())
            with src.open() as stream:
                shutil.copyfileobj(stream, target, _MiB)
            target.seek(0)
        try:
            parquet = stack.enter_context(pq.ParquetFile(target))
            yield from parquet.iter_batches(batch_size=batch_rows)
        except (pa.ArrowException, OSError) as exc:
            raise src.error(f"corrupt parquet file: {exc}") from exc


register_reader("csv", _read_csv, (".csv", ".tsv"))
register_reader("ndjson", _read_ndjson, (".ndjson", ".jsonl"))
register_reader("json", _read_json, (".json",))
register_reader("parquet", _read_parquet, (".parquet", ".pq"))

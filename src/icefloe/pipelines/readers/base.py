"""The reader seam: the registry, the `Source` a reader reads, and what every format shares.

`read_batches` looks the format up in `READERS` and conforms whatever a reader yields to the
contract documented in the package docstring (batch size, `large_string`, declared types).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from icefloe.errors import ConfigError, DataError
from icefloe.pipelines.formats import check_options, is_char, is_str_list, option  # noqa: F401 - the readers' helpers
from icefloe.pipelines.readers import locate
from icefloe.pipelines.readers.prefetch import Prefetched
from icefloe.types import arrow_type, with_undeclared

ReaderFn = Callable[["Source", dict[str, pa.DataType], dict[str, Any], int], Iterator[pa.RecordBatch]]
"""`fn(source, schema, options, batch_rows)`; may yield any batch size and plain `string` columns."""

READERS: dict[str, ReaderFn] = {}
_EXTENSIONS: dict[str, str] = {}
_OPTIONS: dict[str, tuple[str, ...]] = {}
_CHECKS: dict[str, Callable[[dict[str, Any]], object]] = {}
_SPARSE: set[str] = set()
_PREFETCH: set[str] = set()
MiB = 1 << 20
# below this a file is a block or two: a read-ahead thread would cost more (~0.5 ms) than it overlaps
PREFETCH_MIN_BYTES = 8 * MiB


def register_reader(
    name: str,
    fn: ReaderFn,
    extensions: Sequence[str] = (),
    options: Sequence[str] | None = None,
    check: Callable[[dict[str, Any]], object] | None = None,
    *,
    sparse: bool = False,
    prefetch: bool = False,
) -> None:
    """`options` (the read option names the reader takes) and `check` (validates the options,
    raising ConfigError) let config load refuse a mistake before any file arrives; without them
    the reader finds it only when it reads. `sparse`: the reader yields every declared column
    whether the file has it or not (JSON: a record may leave a key out), so a declared column is
    only known missing from the file when no record has its key. `prefetch`: the reader's parsing
    releases the GIL (pyarrow's CSV and JSON readers), so for a file of `PREFETCH_MIN_BYTES` or
    more it runs a few batches ahead on a thread of its own (`prefetch.Prefetched`) while the
    pipeline checks and writes the ones before."""
    READERS[name] = fn
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = name
    if options is not None:
        _OPTIONS[name] = tuple(options)
    if check is not None:
        _CHECKS[name] = check
    if sparse:
        _SPARSE.add(name)
    if prefetch:
        _PREFETCH.add(name)


def option_names(fmt: str) -> tuple[str, ...] | None:
    """The read option names a format's reader registered (None: it did not say)."""
    return _OPTIONS.get(fmt)


def option_check(fmt: str) -> Callable[[dict[str, Any]], object] | None:
    """The format reader's own check of its options (raises ConfigError), if it registered one."""
    return _CHECKS.get(fmt)


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
    # (bytes of the input file consumed so far, records so far); readers may call it, or not
    progress: Callable[[int, int], None] | None = None
    # a file not on the local disk (`Remote`): each call a new seekable stream of its bytes
    opener: Callable[[], BinaryIO] | None = None
    size: int | None = None

    def raw(self) -> BinaryIO:
        """The bytes as stored (gzip not undone), seekable: what Parquet and zip need."""
        if self.opener is not None:
            return self.opener()
        return open(self.path, "rb")

    def file_size(self) -> int:
        return self.size if self.opener is not None and self.size is not None else os.path.getsize(self.path)

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        raw = self.raw()  # the caller closes the returned stream, which closes this
        if not self.gzip:
            return raw
        return io.BufferedReader(_GzipStream(raw, self.name), buffer_size=MiB)

    def error(self, message: str, **where: Any) -> DataError:
        return DataError(message, file=self.name, **where)


@dataclass(frozen=True)
class Remote:
    """A file read where it is (an object store), not from a local copy: `open()` gives a new
    seekable stream of its bytes each call. `name` is its file name (picks the format by
    extension), `size` its length in bytes."""

    name: str
    size: int
    open: Callable[[], BinaryIO]


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
    path: str | os.PathLike | Remote,
    *,
    fmt: str | None = None,
    schema: dict[str, pa.DataType] | None = None,
    options: dict | None = None,
    batch_rows: int = 65536,
    display_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    nullable_missing: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream `path` as batches of at most `batch_rows` rows (see the module docstring).

    A file with rows that lacks a declared column is a DataError, unless `nullable_missing` (then
    the column is all NULL). A file of 0 bytes (after gunzip) has no rows and is no error.
    Errors can surface after some batches were yielded; callers treat the file as a whole.
    A batch whose schema metadata has `icefloe.child` belongs to a child table (XML): it is
    conformed without the declared `schema` and keeps its metadata.
    """
    remote = path if isinstance(path, Remote) else None
    path = path.name if isinstance(path, Remote) else os.fspath(path)
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
    missing = "null" if nullable_missing else "sparse" if fmt in _SPARSE else "error"
    batches = _batches(reader, path, name, types, dict(options or {}), batch_rows, progress, missing, remote)
    size = remote.size if remote is not None else _size(path)
    return Prefetched(batches) if fmt in _PREFETCH and size >= PREFETCH_MIN_BYTES else batches


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # a missing file fails where it always did: on the first read, naming the file


def _batches(
    reader: ReaderFn, path: str, name: str, schema: dict, options: dict, batch_rows: int, progress: Any = None,
    missing: str = "null", remote: Remote | None = None,
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    if remote is not None and remote.size == 0:
        return  # an empty file is zero rows, in every format
    opener, size = (remote.open, remote.size) if remote is not None else (None, None)
    src = Source(path, name, gzip=False, progress=progress, opener=opener, size=size)
    with src.raw() as raw:
        magic = raw.read(2)
    gz = magic == b"\x1f\x8b" or path.lower().endswith(".gz") or name.lower().endswith(".gz")
    src = dataclasses.replace(src, gzip=gz)
    # a remote file of some bytes is not empty: only gzip needs a look (each open is a GET)
    if remote is None or gz:
        with src.open() as stream:
            if not stream.read(1):
                return  # an empty file is zero rows, in every format
    row = 0
    valued: set[str] = set()  # declared columns with a value somewhere (sparse formats)
    for batch in reader(src, schema, options, batch_rows):
        child = CHILD_KEY in (batch.schema.metadata or {})
        if not child and not row:
            _distinct_names(src, batch.schema.names)
        if not child and missing == "error" and batch.num_rows:
            _require(src, schema, batch.schema.names)
        if not child and missing == "sparse":
            valued.update(c for c in schema if c in batch.schema.names and batch.column(c).null_count < batch.num_rows)
        batch = _conform(batch, {} if child else schema, src, row)
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)
        row += 0 if child else batch.num_rows
    if missing == "sparse" and row:
        absent = [c for c in schema if c not in valued and not _has_key(src, c)]
        if absent:
            _require(src, schema, [c for c in schema if c not in absent])


def _distinct_names(src: Source, names: Sequence[str]) -> None:
    # DuckDB (and Iceberg in places) match names regardless of case: one would hide the other
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name or names.count(name) > 1:
            pair = f"{name!r} twice" if other == name else f"{other!r} and {name!r}, which differ only in case"
            raise src.error(f"the file has columns {pair}; rename one")


def _require(src: Source, schema: dict[str, pa.DataType], names: Sequence[str]) -> None:
    absent = [c for c in schema if c not in names]
    if not absent:
        return
    folded = {n.casefold(): n for n in names}
    near = [f"{folded[c.casefold()]!r} for {c!r}" for c in absent if c.casefold() in folded]
    hint = f" (it has {', '.join(near)}: names are matched exactly)" if near else ""
    listed = ", ".join(map(repr, absent))
    raise src.error(
        f"declared column{'s' if len(absent) > 1 else ''} {listed} not in the file{hint}; "
        "set read.nullable_missing: true to read missing columns as NULL"
    )


def _has_key(src: Source, key: str) -> bool:
    """Whether some JSON object in the file has `key` (a raw search, run only for a declared
    column that is NULL in every row)."""
    pattern = re.compile(re.escape(json.dumps(key, ensure_ascii=False).encode()) + rb"\s*:")
    tail = b""
    with src.open() as stream:
        while chunk := stream.read(MiB):
            data = tail + chunk
            if pattern.search(data):
                return True
            tail = data[-(len(pattern.pattern) + 64) :]
    return False


CHILD_KEY = b"icefloe.child"
"""Schema metadata key naming the child table a batch belongs to (the XML reader's children)."""


def _conform(batch: pa.RecordBatch, schema: dict[str, pa.DataType], src: Source, row: int) -> pa.RecordBatch:
    arrays, names = [], []
    for field, column in zip(batch.schema, batch.columns):
        target = schema.get(field.name)
        target = _large(field.type) if target is None else with_undeclared(target, _large(field.type))
        if column.type != target:
            column = _cast(column, target, field.name, src, row)
        arrays.append(column)
        names.append(field.name)
    for name, dtype in schema.items():
        if name not in names:
            arrays.append(pa.nulls(batch.num_rows, dtype))
            names.append(name)
    if CHILD_KEY not in (batch.schema.metadata or {}):
        return pa.RecordBatch.from_arrays(arrays, names=names)
    fields = [pa.field(n, a.type) for n, a in zip(names, arrays)]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))


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


def block_size(batch_rows: int, bytes_per_row: int) -> int:
    # a block is what pyarrow parses (and infers types from) at once: big enough to hold any
    # sane row, small enough to keep memory flat
    return max(MiB, min(32 * MiB, batch_rows * bytes_per_row))


# --- option helpers shared by the readers --------------------------------------------------------


def is_tz(dtype: pa.DataType) -> bool:
    return pa.types.is_timestamp(dtype) and dtype.tz is not None


def to_tz(column: Any, dtype: pa.DataType) -> Any:
    has_zone = pc.match_substring_regex(column, r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$")
    as_utc = pc.binary_join_element_wise(column, pa.scalar("Z", column.type), pa.scalar("", column.type))
    return pc.cast(pc.if_else(has_zone, column, as_utc), dtype)

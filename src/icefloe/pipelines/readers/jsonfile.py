"""The NDJSON reader (streaming) and the JSON document reader (parsed whole, then read as NDJSON)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.json as pajson

from icefloe.errors import DataError
from icefloe.pipelines.readers import locate
from icefloe.pipelines.readers.base import MiB, Source, block_size, check_options, register_reader


def _read_ndjson(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, (), "ndjson")
    block = block_size(batch_rows, 256)
    declared = pa.schema([pa.field(n, t) for n, t in schema.items()])
    parse = pajson.ParseOptions(explicit_schema=declared if schema else None, unexpected_field_behavior="infer")
    strict = pajson.ParseOptions(explicit_schema=declared, unexpected_field_behavior="ignore")

    def check(lines: Sequence[str]) -> Exception | None:
        try:
            pajson.read_json(io.BytesIO("\n".join(lines).encode()), parse_options=strict)
        except pa.ArrowException as exc:
            return exc
        return None

    with src.open() as raw:
        stream = _ObjectLines(raw, src)
        try:
            for batch in _json_blocks(stream, block, parse):
                batch.validate(full=True)  # pyarrow's JSON parser does not check UTF-8 itself
                yield batch
        except pa.ArrowException as exc:
            locate.locate_ndjson(src, block_size=block, declared=list(schema), check=check)
            raise src.error(f"cannot read NDJSON: {exc}") from exc


# a line whose first character (after blanks) is not `{`: `null`, `[1]`, `"x"`, `42`
_NOT_AN_OBJECT = re.compile(rb"\n[ \t\r]*([^{ \t\r\n])")


class _ObjectLines(io.RawIOBase):
    """The NDJSON bytes as pyarrow reads them, refusing a line that is not a JSON object before
    pyarrow parses it: pyarrow reads a `null` line as a row of nulls (a row nobody sent), and a
    file whose first line is `null` crashes the process (pyarrow 26, SIGSEGV)."""

    def __init__(self, raw: BinaryIO, src: Source) -> None:
        super().__init__()
        self._raw, self._src = raw, src
        self._line = 1  # the line the next byte is on
        self._at_start = True  # only blanks since the last newline (or the start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._check(data)
        return data

    def _check(self, data: bytes) -> None:
        text = b"\n" + data if self._at_start else data
        found = _NOT_AN_OBJECT.search(text)
        if found is not None:
            before = text[: found.start(1)]
            line = self._line + before.count(b"\n") - (1 if self._at_start else 0)
            column = len(before) - before.rfind(b"\n")
            raise self._src.error(f"expected a JSON object, got {_kind_of(found.group(1))}", line=line, column=column)
        self._line += data.count(b"\n")
        tail = data[data.rfind(b"\n") + 1 :]
        self._at_start = (self._at_start or b"\n" in data) and not tail.strip(b" \t\r")


def _kind_of(first: bytes) -> str:
    """What a JSON value starting with this byte is (the words locate.py uses)."""
    kinds = {b"n": "null", b"[": "array", b'"': "string", b"t": "boolean", b"f": "boolean"}
    if first in kinds:
        return kinds[first]
    return "number" if first.isdigit() or first == b"-" else f"something that is not JSON ({first.decode('latin-1')!r})"


def _json_blocks(stream: BinaryIO | io.RawIOBase, block: int, parse: Any) -> Iterator[pa.RecordBatch]:
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
            first = stream.readline(MiB)
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


register_reader("ndjson", _read_ndjson, (".ndjson", ".jsonl"), options=(), sparse=True, prefetch=True)
register_reader("json", _read_json, (".json",), options=(), sparse=True, prefetch=True)

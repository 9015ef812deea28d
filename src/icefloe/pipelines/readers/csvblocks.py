"""Parse a big CSV on several cores: the file cut into blocks at line breaks, parsed in order.

pyarrow's streaming CSV reader (`open_csv`) parses one block at a time on one core; on the 2M-row
benchmark file that made parsing the longest stage of `icefloe run --once` while the second core
waited. Its multithreaded `read_csv` reads the whole file into one table, which breaks the bounded
memory of a streamed event. This reader does what `read_csv` does inside, but streams: the bytes
are cut into blocks at the last line break of each, up to `workers` blocks parse at once (pyarrow
releases the GIL) and the batches come out in file order, at most `workers + 1` blocks in flight.

Cutting at any line break is what pyarrow's own parallel reader does when values hold no line
breaks (`newlines_in_values` false), and the only case it is used in. A quoted value that breaks
a line anyway shows as a value holding a line break or a parse error in the block the quote
opened in, which the caller turns into the error naming the line, as with the streaming reader.

The first block is parsed alone: its header gives the names and it infers the types of columns
the schema leaves out, as the streaming reader infers from its first block; every later block is
parsed with those names and types, so all batches share one schema.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["BlockReader", "parse_workers"]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def parse_workers() -> int:
    """How many blocks parse at once: the cores there are, up to 4 (the Parquet encoder, one
    core per data file, cannot keep up with more)."""
    return max(1, min(4, os.cpu_count() or 1))


class BlockReader:
    """`schema` and `read_next_batch()` like pyarrow's CSVStreamingReader; `close()` when done."""

    def __init__(
        self,
        stream: _Readable,
        block: int,
        header: bool,
        parse: pacsv.ParseOptions,
        convert: pacsv.ConvertOptions,
        workers: int,
    ) -> None:
        self._stream, self._block, self._parse = stream, block, parse
        self._carry = b""
        self._eof = False
        first = self._next_block()
        # one batch per block
        read = pacsv.ReadOptions(use_threads=False, block_size=len(first) + 1, autogenerate_column_names=not header)
        table = pacsv.read_csv(pa.BufferReader(first), read_options=read, parse_options=parse, convert_options=convert)
        self.schema: pa.Schema = table.schema
        self._ready = deque(table.to_batches())
        self._names = table.schema.names
        self._convert = _pinned(convert, table.schema)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="icefloe-csv")
        self._depth = max(1, workers) + 1
        self._pending: deque[Future[pa.Table]] = deque()

    def _next_block(self) -> bytes:
        """The next bytes up to and including a line break (the rest of the file at its end)."""
        data = self._carry
        while not self._eof:
            more = self._stream.read(self._block)
            self._eof = not more
            data += more
            cut = max(data.rfind(b"\n", len(data) - len(more)), data.rfind(b"\r", len(data) - len(more))) + 1
            if cut:
                # a CRLF cut between its two bytes leaves an empty line, which pyarrow skips
                self._carry = data[cut:]
                return data[:cut]
        self._carry = b""
        return data

    def _parse_block(self, data: bytes) -> pa.Table:
        read = pacsv.ReadOptions(use_threads=False, column_names=self._names, block_size=len(data) + 1)
        return pacsv.read_csv(
            pa.BufferReader(data), read_options=read, parse_options=self._parse, convert_options=self._convert
        )

    def _fill(self) -> None:
        while len(self._pending) < self._depth:
            data = self._next_block()
            if not data:
                return
            self._pending.append(self._pool.submit(self._parse_block, data))

    def read_next_batch(self) -> pa.RecordBatch:
        while not self._ready:
            self._fill()
            if not self._pending:
                raise StopIteration
            self._ready.extend(self._pending.popleft().result().to_batches())
        return self._ready.popleft()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)


def _pinned(convert: pacsv.ConvertOptions, schema: pa.Schema) -> pacsv.ConvertOptions:
    """`convert` with every column's type fixed to what the first block gave it."""
    kwargs: dict[str, Any] = {
        name: getattr(convert, name)
        for name in (
            "check_utf8", "null_values", "true_values", "false_values", "strings_can_be_null",
            "quoted_strings_can_be_null", "auto_dict_encode", "auto_dict_max_cardinality",
            "decimal_point", "timestamp_parsers",
        )
    }  # fmt: skip
    if not kwargs["timestamp_parsers"]:
        kwargs.pop("timestamp_parsers")
    kwargs["column_types"] = {field.name: field.type for field in schema}
    return pacsv.ConvertOptions(**kwargs)

"""Find the first bad line of a file after a fast reader has failed.

pyarrow's errors rarely say where in the file they happened, so on failure the readers re-read the
(decompressed) file slowly with the stdlib csv/json modules and raise a DataError naming the line.
None of this runs on the happy path, which is why it favours clarity over speed.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Protocol, TypeVar

from icefloe.errors import DataError

__all__ = ["Opener", "first_failing", "iter_lines", "check_gzip", "locate_csv", "locate_ndjson"]

T = TypeVar("T")
Check = Callable[[Sequence[T]], Exception | None]
_CHUNK = 1024

# pyarrow accepts fields of any size; the stdlib default (128 KiB) would report a false error.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


class Opener(Protocol):
    name: str
    gzip: bool

    def open(self) -> BinaryIO: ...


def first_failing(items: Sequence[T], check: Check[T]) -> tuple[int, Exception] | None:
    """Index of the first item that makes `check` fail, by bisecting on prefixes.

    Failure is monotonic in the prefix (a bad row stays bad however many rows follow it), so
    log2(len) checks are enough.
    """
    exc = check(items)
    if exc is None:
        return None
    lo, hi = 1, len(items)  # the shortest failing prefix has length in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        found = check(items[:mid])
        if found is None:
            lo = mid + 1
        else:
            hi, exc = mid, found
    return hi - 1, check(items[hi - 1 : hi]) or exc


def iter_lines(stream: BinaryIO, name: str) -> Iterator[tuple[int, int, int, str]]:
    """(1-based line, byte offset, byte length, text) per line; invalid UTF-8 is a DataError."""
    offset = 0
    for lineno, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = offset + exc.start
            raise DataError(
                f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at byte offset {bad}", file=name, line=lineno, offset=bad
            ) from exc
        yield lineno, offset, len(raw), text.lstrip("\ufeff") if lineno == 1 else text
        offset += len(raw)


def check_gzip(src: Opener) -> None:
    """Decompress everything first: a damaged gzip stream can surface as garbage rows before the CRC fails."""
    if src.gzip:
        with src.open() as stream:
            while stream.read(1 << 20):
                pass


def locate_csv(
    src: Opener,
    *,
    delimiter: str,
    quote_char: str | None,
    header: bool,
    skip_rows: int,
    make_check: Callable[[list[str]], tuple[Check[list[str]], dict[int, Any]]],
) -> None:
    """Raise a DataError for the first bad CSV row; return if none is found.

    `make_check(header_names)` gives a function that converts a list of rows exactly like the fast
    reader does, plus the Arrow type per column index (for the message).
    """
    check_gzip(src)
    quoting = csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE
    with src.open() as stream:
        texts = (text for _, _, _, text in iter_lines(stream, src.name))
        reader = csv.reader(texts, delimiter=delimiter, quotechar=quote_char or '"', quoting=quoting, strict=False)
        names: list[str] | None = None
        check: Check[list[str]] | None = None
        types: dict[int, Any] = {}
        pending: list[tuple[int, list[str]]] = []
        end = 0
        while True:
            start = end + 1
            try:
                row = next(reader, None)
            except csv.Error as exc:
                raise DataError(f"malformed CSV: {exc}", file=src.name, line=reader.line_num) from exc
            end = reader.line_num
            if row is None:
                break
            if skip_rows > 0:
                skip_rows -= 1
                continue
            if not row:
                continue  # blank line, pyarrow skips these too
            if names is None:
                names = row if header else [f"f{i}" for i in range(len(row))]
                check, types = make_check(names)
                if header:
                    continue
            if len(row) != len(names):
                raise DataError(f"expected {len(names)} columns, got {len(row)}", file=src.name, line=start)
            pending.append((start, row))
            if len(pending) >= _CHUNK:
                _csv_chunk(src.name, pending, check, names, types)
                pending = []
        if pending and names is not None:
            _csv_chunk(src.name, pending, check, names, types)


def _csv_chunk(name: str, pending: list[tuple[int, list[str]]], check: Any, names: list[str], types: dict) -> None:
    hit = first_failing([row for _, row in pending], check)
    if hit is None:
        return
    index, exc = hit
    line, row = pending[index]
    reason = str(exc)
    match = re.match(r"In CSV column #(\d+): (.*)", reason, re.S)
    if match:
        col, reason = int(match.group(1)), match.group(2)
        raise DataError(
            f"column {names[col]!r}: cannot convert {row[col]!r} to {types.get(col, 'its type')}: {reason}",
            file=name,
            line=line,
        ) from exc
    raise DataError(reason, file=name, line=line) from exc


def locate_ndjson(
    src: Opener, *, block_size: int, declared: Sequence[str], check: Check[str]
) -> None:
    """Raise a DataError for the first bad NDJSON line; return if none is found.

    Besides syntax, this models pyarrow's streaming rule: the types of undeclared fields are fixed
    by the first block (`block_size` bytes), so a field that first appears, or changes kind, after
    it fails. `check(lines)` converts lines like the fast reader does for the declared columns.
    """
    check_gzip(src)
    first_kinds: dict[str, str] = {}
    pending: list[tuple[int, str]] = []
    with src.open() as stream:
        for lineno, offset, size, text in iter_lines(stream, src.name):
            body = text.strip()
            if not body:
                continue
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as exc:
                column = exc.colno + len(text) - len(text.lstrip())
                raise DataError(f"invalid JSON: {exc.msg}", file=src.name, line=lineno, column=column) from exc
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {_kind(obj)}", file=src.name, line=lineno)
            problem = _drift(obj, first_kinds, declared, block_size if offset + size > block_size else 0)
            if problem:
                raise DataError(f"{problem}; declare the column's type in the pipeline schema", file=src.name, line=lineno)
            pending.append((lineno, body))
            if len(pending) >= _CHUNK:
                _json_chunk(src.name, pending, check, declared)
                pending = []
    _json_chunk(src.name, pending, check, declared)


def _json_chunk(name: str, pending: list[tuple[int, str]], check: Check[str], declared: Sequence[str]) -> None:
    hit = first_failing([body for _, body in pending], check) if pending else None
    if hit is None:
        return
    index, exc = hit
    line, body = pending[index]
    obj = json.loads(body)
    for column in declared:
        if column in obj and check([json.dumps({column: obj[column]})]) is not None:
            raise DataError(f"column {column!r}: cannot convert {obj[column]!r}: {exc}", file=name, line=line) from exc
    raise DataError(str(exc), file=name, line=line) from exc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _drift(obj: dict, kinds: dict[str, str], declared: Sequence[str], past_block: int) -> str | None:
    """`past_block` is 0 inside the first block, else the block size."""
    for key, value in obj.items():
        if key in declared:
            continue
        kind, seen = _kind(value), kinds.get(key)
        if not past_block:
            # within one block pyarrow widens null -> anything and integer -> number
            if seen is None or seen == "null" or (seen, kind) == ("integer", "number"):
                kinds[key] = kind
            elif kind != "null" and kind != seen and (seen, kind) != ("number", "integer"):
                return f"field {key!r} is {kind} here but {seen} on an earlier line"
        elif seen is None:
            return f"field {key!r} first appears after the first {past_block} bytes, which fix the columns"
        elif kind != "null" and kind != seen and (seen, kind) != ("number", "integer"):
            return f"field {key!r} is {kind} here but was {seen} in the first block of the file"
    return None

"""Typed Arrow batches from the text a block's stylesheet wrote (layout: see `xmlspec.stylesheets`).

Conversion runs vectorised in pyarrow: strip, empty -> null, then a cast or strptime. When a value
does not convert, the first bad one is found and reported with its record's line and column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from icefloe.errors import DataError
from icefloe.pipelines.readers import locate
from icefloe.pipelines.readers.base import CHILD_KEY, is_tz, to_tz
from icefloe.pipelines.readers.xmlspec import FieldSpec, XmlSpec

__all__ = ["BlockBuilder", "convert", "header_values"]

Where = Callable[[int], tuple[int | None, int | None]]  # row -> (line, column) of its record


class BlockBuilder:
    """Builds the parent batch and one batch per child for each block, for one document."""

    def __init__(self, spec: XmlSpec, file: str, header: Sequence[pa.Scalar]) -> None:
        self.spec, self.file, self.header = spec, file, header
        self.width = len(spec.fields) + len(spec.children)
        self.sections = 1 + sum(f.repeated for f in spec.fields) + len(spec.children)
        self.child_meta = [{CHILD_KEY: child.name.encode()} for child in spec.children]

    def build(self, text: bytes, separators: tuple[str, str], n: int, record_at: Where) -> list[pa.RecordBatch]:
        """Batches for `n` records from their extracted text; `record_at(row)` locates a record."""
        # all of it vectorised: one split per section, then columns are strided views of the cells
        spec, file = self.spec, self.file
        field_sep, section_sep = separators
        whole = pa.array([text], pa.large_binary()).cast(pa.large_string())
        sections = pc.split_pattern(whole, pattern=section_sep).flatten()
        if len(sections) != self.sections:
            raise RuntimeError(f"xml reader: {len(sections)} sections extracted, expected {self.sections}")

        def cells(index: int, width: int, rows: int | None = None) -> pa.FixedSizeListArray:
            flat = pc.split_pattern(sections.slice(index, 1), pattern=field_sep).flatten()
            if rows is not None and len(flat) != rows * width + 1:
                raise RuntimeError(f"xml reader: {len(flat) - 1} values extracted, expected {rows * width}")
            return pa.FixedSizeListArray.from_arrays(flat.slice(0, len(flat) - 1), width)

        grid = cells(0, self.width, n)
        columns: dict[str, pa.Array] = {}
        section = 1
        for index, f in enumerate(spec.fields):
            column = pc.list_element(grid, index)
            if not f.repeated:
                columns[f.name] = convert(column, f, file, record_at)
                continue
            offsets, parents = _offsets(column)
            values = pc.list_element(cells(section, 1, offsets[-1].as_py()), 0)
            section += 1
            where = _via(parents, record_at)
            typed = convert(values, f, file, where)
            # Iceberg lists come back from pyiceberg as large_list<element>: the same here
            columns[f.name] = pa.LargeListArray.from_arrays(offsets, typed, type=pa.large_list(pa.field("element", typed.type)))
        for index, value in enumerate(self.header):
            columns[spec.header[index].name] = pa.repeat(value, n)
        batches = [pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))]
        for index, child in enumerate(spec.children):
            offsets, parents = _offsets(pc.list_element(grid, len(spec.fields) + index))
            rows = cells(section, len(child.fields), offsets[-1].as_py())
            section += 1
            where = _via(parents, record_at)
            arrays = [columns[key].take(parents) for key in child.parent_key]
            arrays += [convert(pc.list_element(rows, k), f, file, where) for k, f in enumerate(child.fields)]
            names = [*child.parent_key, *(f.name for f in child.fields)]
            schema = pa.schema([pa.field(nm, a.type) for nm, a in zip(names, arrays)], metadata=self.child_meta[index])
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        return batches


    def build_tables(self, parts: Sequence[dict[str, pa.RecordBatch]], firsts: Sequence[int], n: int, record_at: Where) -> list[pa.RecordBatch]:
        """The same batches as `build`, from xml2arrow's tables for consecutive blocks (`firsts`:
        the row of each block's first record; layout: see `xmlfast._tables`)."""
        spec, file = self.spec, self.file

        def table(name: str, fields: int) -> tuple[pa.Array, list[pa.Array]]:
            """(record index of every row, [raw strings per field]) over all the blocks."""
            index, values = [], [[] for _ in range(fields)]  # type: ignore[var-annotated]
            for part, first in zip(parts, firsts, strict=True):
                batch = part.get(name)
                if batch is None or not batch.num_rows:
                    continue
                rows = pc.cast(batch.column(0), pa.int64())
                index.append(pc.add(rows, first) if first else rows)
                for k in range(fields):
                    values[k].append(batch.column(k + 2 if name != "p" else k + 1))
            if not index:
                return pa.array([], pa.int64()), [pa.array([], pa.large_string()) for _ in range(fields)]
            return pa.concat_arrays(index), [pa.concat_arrays(v).cast(pa.large_string()) for v in values]

        plain = [i for i, f in enumerate(spec.fields) if not f.repeated]
        _, parent = table("p", len(plain))
        raw = dict(zip(plain, parent, strict=True))
        columns: dict[str, pa.Array] = {}
        for index, f in enumerate(spec.fields):
            if not f.repeated:
                columns[f.name] = convert(raw[index], f, file, record_at)
                continue
            rows, (values,) = table(f"f{index}", 1)
            offsets, parents = _offsets(_counts(rows, n))
            typed = convert(values, f, file, _via(parents, record_at))
            columns[f.name] = pa.LargeListArray.from_arrays(offsets, typed, type=pa.large_list(pa.field("element", typed.type)))
        for index, value in enumerate(self.header):
            columns[spec.header[index].name] = pa.repeat(value, n)
        batches = [pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))]
        for index, child in enumerate(spec.children):
            parents, values = table(f"c{index}", len(child.fields))
            where = _via(parents, record_at)
            arrays = [columns[key].take(parents) for key in child.parent_key]
            arrays += [convert(values[k], f, file, where) for k, f in enumerate(child.fields)]
            names = [*child.parent_key, *(f.name for f in child.fields)]
            schema = pa.schema([pa.field(nm, a.type) for nm, a in zip(names, arrays)], metadata=self.child_meta[index])
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        return batches


def _counts(rows: pa.Array, n: int) -> pa.Array:
    """Matches per record, from the (ascending) record index of every match."""
    counts = [0] * n
    if len(rows):
        tally = pc.value_counts(rows)
        for record, count in zip(tally.field(0).to_pylist(), tally.field(1).to_pylist(), strict=True):
            counts[record] = count
    return pa.array(counts, pa.int64())


def _via(parents: pa.Array, record_at: Where) -> Where:
    return lambda row: record_at(parents[row].as_py())


def _offsets(counts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(Large) list offsets from per-record match counts, and the record index of every match."""
    sizes = pc.cast(counts, pa.int64())
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(sizes)])
    total = offsets[-1].as_py()
    parents = pc.list_parent_indices(pa.LargeListArray.from_arrays(offsets, pa.nulls(total)))
    return offsets, parents


def convert(raw: pa.Array, f: FieldSpec, file: str, where: Where) -> pa.Array:
    """Strings as extracted -> the field's type; empty -> null; typed values are stripped first."""
    if pa.types.is_large_string(f.type):
        return _null_if_empty(raw)
    text = _null_if_empty(pc.utf8_trim_whitespace(raw))
    try:
        return _typed(text, f)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        hit = locate.first_failing(text, lambda part: _fails(part, f))
        row = hit[0] if hit else 0
        line, column = where(row)
        value = text[row].as_py()
        raise DataError(f"field {f.name!r}: cannot convert {value!r} to {f.type_name}", file=file, line=line, column=column) from exc


def _fails(part: Any, f: FieldSpec) -> Exception | None:
    try:
        _typed(part, f)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        return exc
    return None


def _typed(text: pa.Array, f: FieldSpec) -> pa.Array:
    if f.format is None:
        return to_tz(text, f.type) if is_tz(f.type) else pc.cast(text, f.type)
    parsed = pc.strptime(text, format=f.format, unit="us", error_is_null=True)
    if pc.any(pc.and_(pc.is_valid(text), pc.is_null(parsed))).as_py():
        raise ValueError(f"does not match format {f.format!r}")
    if pa.types.is_date(f.type):
        return pc.cast(pc.cast(parsed, pa.timestamp("us")), f.type)
    if is_tz(f.type) and parsed.type.tz is None:
        return pc.assume_timezone(parsed, "UTC")
    return pc.cast(parsed, f.type)


def _null_if_empty(column: pa.Array) -> pa.Array:
    empty = pc.equal(pc.binary_length(column), 0)
    if not pc.any(empty).as_py():
        return column
    return pc.if_else(empty, pa.scalar(None, column.type), column)


def header_values(spec: XmlSpec, texts: dict[str, tuple[str | None, int | None]], file: str) -> list[pa.Scalar]:
    """The header columns' typed values (one per document), from (text, line) per header column."""
    values = []
    for f in spec.header:
        text, line = texts.get(f.name, (None, None))
        def where(_row: int, line: int | None = line) -> tuple[int | None, int | None]:
            return line, None

        array = convert(pa.array([text or ""], pa.large_string()), f, file, where)
        values.append(array[0])
    return values

"""The XML benchmark's peer: what you would write by hand to turn a USPTO daily file into Arrow.

One process, `lxml.etree.iterparse` over the `case-file` elements, `findtext` per field, the usual
clear-as-you-go idiom so memory stays flat, and typed columns built with pyarrow every 65,536
records. It extracts exactly what `bench.uspto.USPTO_READ` asks icefloe for (the case-file fields,
the two header values, the classification and owner child rows) with the same types.

    python -m bench.xml_baseline FILE.xml|FILE.zip|FILE.xml.gz      # prints row counts and time
"""

from __future__ import annotations

import gzip
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

__all__ = ["CHUNK", "contender", "extract", "summarize"]

CHUNK = 65_536

# column -> (path under <case-file>, kind); kinds: str, long, int, date, list
_FIELDS = {
    "serial_number": ("serial-number", "long"),
    "registration_number": ("registration-number", "str"),
    "transaction_date": ("transaction-date", "date"),
    "filing_date": ("case-file-header/filing-date", "date"),
    "registration_date": ("case-file-header/registration-date", "date"),
    "status_code": ("case-file-header/status-code", "int"),
    "status_date": ("case-file-header/status-date", "date"),
    "mark_identification": ("case-file-header/mark-identification", "str"),
    "attorney_name": ("case-file-header/attorney-name", "str"),
    "correspondent_address": ("correspondent/address-1", "str"),
    "owner_countries": ("case-file-owners/case-file-owner/nationality/country", "list"),
    "event_codes": ("case-file-event-statements/case-file-event-statement/code", "list"),
}
_CLASSIFICATIONS = {"international_code": ("international-code", "str"), "status_code": ("status-code", "int")}
_OWNERS = {"party_name": ("party-name", "str"), "country": ("nationality/country", "str")}
_HEADER_TAGS = {"version-no": "version_no", "creation-datetime": "creation_datetime"}


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The XML bytes of a plain, gzipped or zipped (first .xml member) daily file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next(n for n in archive.namelist() if n.lower().endswith(".xml"))
            with archive.open(member) as stream:
                yield stream
    elif path.name.endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            yield cast(IO[bytes], stream)
    else:
        with open(path, "rb") as stream:
            yield stream


def _text(element: Any, path: str) -> str | None:
    value = element.findtext(path)
    return value or None


def _column(values: list[Any], kind: str) -> pa.Array:
    if kind == "list":
        return pa.array(values, pa.list_(pa.large_string()))
    strings = pa.array(values, pa.large_string())
    if kind == "str":
        return strings
    if kind == "date":
        return pc.strptime(pc.utf8_trim_whitespace(strings), format="%Y%m%d", unit="s").cast(pa.date32())
    return pc.utf8_trim_whitespace(strings).cast(pa.int64() if kind == "long" else pa.int32())


class _Table:
    """Column lists of one output table, turned into a typed record batch every CHUNK rows."""

    def __init__(self, columns: dict[str, str]) -> None:
        self.kinds = columns
        self.values: dict[str, list[Any]] = {name: [] for name in columns}
        self.batches: list[pa.RecordBatch] = []

    def add(self, row: dict[str, Any]) -> None:
        for name, values in self.values.items():
            values.append(row[name])
        if len(self.values[next(iter(self.values))]) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        arrays = [_column(values, self.kinds[name]) for name, values in self.values.items()]
        self.batches.append(pa.RecordBatch.from_arrays(arrays, names=list(self.values)))
        for values in self.values.values():
            values.clear()

    def table(self) -> pa.Table:
        if self.values[next(iter(self.values))] or not self.batches:
            self.flush()
        return pa.Table.from_batches(self.batches)


def extract(path: str | Path) -> dict[str, pa.Table]:
    """`{"case_files": ..., "classifications": ..., "owners": ...}` as pyarrow tables."""
    header: dict[str, str | None] = dict.fromkeys(_HEADER_TAGS.values())
    parent_kinds = {name: kind for name, (_, kind) in _FIELDS.items()}
    parents = _Table({**parent_kinds, **dict.fromkeys(header, "str")})
    classes = _Table({"serial_number": "long", **{n: k for n, (_, k) in _CLASSIFICATIONS.items()}})
    owners = _Table({"serial_number": "long", **{n: k for n, (_, k) in _OWNERS.items()}})
    with _open(Path(path)) as stream:
        # lxml neither loads the DTD the DOCTYPE names nor touches the network unless asked to
        for _, element in etree.iterparse(stream, events=("end",), tag=("case-file", *_HEADER_TAGS)):
            if element.tag != "case-file":
                header[_HEADER_TAGS[element.tag]] = element.text
                continue
            row: dict[str, Any] = {}
            for name, (where, kind) in _FIELDS.items():
                if kind == "list":
                    row[name] = [hit.text for hit in element.iterfind(where)]
                else:
                    row[name] = _text(element, where)
            parents.add({**row, **header})
            serial = row["serial_number"]
            for item in element.iterfind("classifications/classification"):
                classes.add({"serial_number": serial, **{n: _text(item, p) for n, (p, _) in _CLASSIFICATIONS.items()}})
            for item in element.iterfind("case-file-owners/case-file-owner"):
                owners.add({"serial_number": serial, **{n: _text(item, p) for n, (p, _) in _OWNERS.items()}})
            # free what is parsed: the record's subtree and the records before it
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
    return {"case_files": parents.table(), "classifications": classes.table(), "owners": owners.table()}


def summarize(tables: dict[str, pa.Table]) -> dict[str, int]:
    """Counts and sums that two correct extractions must agree on (the bench compares them)."""
    cases, classes, owners = tables["case_files"], tables["classifications"], tables["owners"]

    def total(table: pa.Table, column: str) -> int:
        return int(pc.sum(table[column]).as_py() or 0)

    return {
        "case_files": cases.num_rows,
        "classifications": classes.num_rows,
        "owners": owners.num_rows,
        "sum_serial_number": total(cases, "serial_number"),
        "sum_status_code": total(cases, "status_code"),
        "registered": cases.num_rows - cases["registration_date"].null_count,
        "with_attorney": cases.num_rows - cases["attorney_name"].null_count,
        "owner_countries": int(pc.sum(pc.list_value_length(cases["owner_countries"])).as_py() or 0),
        "sum_class_status": total(classes, "status_code"),
        "owners_with_country": owners.num_rows - owners["country"].null_count,
    }


def contender(args: dict[str, Any]) -> dict[str, Any]:
    """bench.child entry point: extract `args["xml"]`, timed after imports."""
    from bench.common import rss_mb

    start_rss = rss_mb()
    started = time.perf_counter()
    tables = extract(args["xml"])
    seconds = time.perf_counter() - started
    return {"start_rss_mb": start_rss, "seconds": seconds, "summary": summarize(tables)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    began = time.perf_counter()
    result = summarize(extract(sys.argv[1]))
    print(f"{time.perf_counter() - began:.2f}s {result}")

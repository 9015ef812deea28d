"""Read a landed file as a stream of Arrow record batches, with bounded memory.

Formats are looked up in `READERS`; add one with `register_reader`. Whatever the format, every batch
has at most `batch_rows` rows, strings are `large_string`, declared schema columns have exactly the
declared type, and declared columns missing from the file are added as all-null (schemas evolve,
old files stay readable). Columns that are not declared are inferred; for CSV and NDJSON pyarrow
fixes their types from the first block of the file, so a column that changes type later fails with
a line-precise DataError asking for it to be declared.

Every problem with the input is a DataError naming the file and, where possible, the 1-based line.
Gzip is transparent (by name or by magic bytes) and decompressed as a stream.

XML (`format: xml`; `.xml`, gzip, or a zip of `.xml` members) extracts records by the spec in
`xmlspec`, in parallel processes for big files (`xmlfile`). Its child tables come as batches whose
schema metadata holds `icefloe.child` (`CHILD_KEY`); they skip the declared `schema`.
"""

from __future__ import annotations

# each format module registers its reader (and its file extensions) when imported
from icefloe.pipelines.readers import csvfile, jsonfile, parquetfile, xmlfile  # noqa: F401
from icefloe.pipelines.readers.base import (
    READERS,
    ReaderFn,
    Remote,
    Source,
    check_options,
    detect_format,
    option_check,
    option_names,
    read_batches,
    register_reader,
)

__all__ = [
    "READERS",
    "ReaderFn",
    "Remote",
    "Source",
    "check_options",
    "detect_format",
    "option_check",
    "option_names",
    "read_batches",
    "register_reader",
]

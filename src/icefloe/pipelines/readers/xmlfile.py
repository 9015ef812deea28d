"""The XML reader: records of a (possibly multi-gigabyte) XML document as Arrow batches.

    read: {format: xml, record: case-file, fields: {...}, header: {...}, children: {...}}

The options are documented in `xmlspec`. Input is `.xml`, gzip (undone by `Source.open`) or a zip
(recognised by content) whose `.xml` members are read in archive order as one stream of records;
errors in a member name it as `archive.zip!member.xml`.

Parent rows carry exactly the declared fields, then the header columns. Each child table comes as
batches whose schema metadata holds `icefloe.child: <name>`, interleaved with the parent batches;
a child batch only holds rows of records whose parent rows were already yielded (or come with it).

Large documents are split at record boundaries and parsed by worker processes (`workers`, default
one per CPU; threads with the xml2arrow engine, see `xmlfast`) once more than `parallel_min_bytes`
are seen; output is identical either way. Memory
stays flat: a few blocks of `chunk_bytes` are in flight at any time (blocks are cut at records, so
after the first record a long stretch without any record is held whole; so is one huge record).

Security: no DTD is loaded, nothing is fetched, no entity is expanded (a DOCTYPE never reaches the
parser, one declaring entities is refused); malformed XML is a DataError with line and column.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa

from icefloe.errors import DataError
from icefloe.pipelines.readers.base import CHILD_KEY, Source, register_reader
from icefloe.pipelines.readers.xmlfast import CHUNK_BYTES, engine_config, guard_patterns
from icefloe.pipelines.readers.xmlpool import Runner
from icefloe.pipelines.readers.xmlspec import OPTION_KEYS, parse_spec, stylesheets
from icefloe.pipelines.readers.xmlsplit import read_document

__all__ = ["read_xml"]


def read_xml(src: Source, schema: dict[str, pa.DataType], options: dict[str, Any], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The `ReaderFn` registered as format `xml` (see the module docstring)."""
    spec = parse_spec(options)
    fast = engine_config(spec, spec.engine)
    if fast is not None and "chunk_bytes" not in options:
        spec = dataclasses.replace(spec, chunk_bytes=CHUNK_BYTES)
    templates = (*stylesheets(spec), None if fast is None else (fast, guard_patterns(spec)))
    # xml2arrow parses without the GIL: threads, sharing this process's pyarrow, beat worker
    # processes on CPU (no pickling, no interpreters) and on memory (measured, see the report)
    runner = Runner(spec.workers, threads=fast is not None)
    failed = True
    done = 0  # records of the documents before this one (zip members)
    name = src.name
    try:
        for name, stream, expected, consumed in _documents(src):
            with stream:

                def progress(records: int, consumed: Callable[[], int] = consumed, before: int = done) -> None:
                    if src.progress is not None:
                        src.progress(consumed(), before + records)

                for batch in read_document(
                    stream, name, spec, templates, runner, expected_bytes=expected, progress=progress
                ):
                    if CHILD_KEY not in (batch.schema.metadata or {}):
                        done += batch.num_rows
                    yield batch
        failed = False
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # raised by a zip member's stream
        raise DataError(f"corrupt zip archive: {exc}", file=name) from exc
    finally:
        runner.close(failed=failed)


def _documents(src: Source) -> Iterator[tuple[str, IO[bytes], int | None, Callable[[], int]]]:
    """(name, stream, uncompressed size if known, bytes of the input file consumed) per document."""
    if src.data is None and not src.gzip and _is_zip(src):
        # a remote zip reads its central directory through the seekable stream, then the members
        with zipfile.ZipFile(src.path if src.opener is None else src.raw()) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and m.filename.lower().endswith(".xml")]
            if not members:
                raise DataError("zip archive holds no .xml member", file=src.name)
            fp: Any = archive.fp
            for member in members:
                yield f"{src.name}!{member.filename}", archive.open(member), member.file_size, fp.tell
        return
    stream = src.open()
    # the file position behind a gzip stream is what progress reports, not the inflated bytes
    raw = getattr(getattr(stream, "raw", None), "_raw", None)
    position = raw.tell if raw is not None else stream.tell
    size = None if src.data is not None else src.file_size()
    if size is not None and src.gzip:
        size = max(size, _gzip_size(src))
    yield src.name, stream, size, position


def _gzip_size(src: Source) -> int:
    # the trailer's ISIZE: the inflated size modulo 4 GiB (of the last member), enough to decide
    # whether the file is worth starting worker processes for right away
    with src.raw() as raw:
        raw.seek(0, os.SEEK_END)
        if raw.tell() < 18:
            return 0
        raw.seek(-4, os.SEEK_END)
        return int.from_bytes(raw.read(4), "little")


def _is_zip(src: Source) -> bool:
    with src.raw() as raw:
        if raw.read(4) != b"PK\x03\x04":
            return False
        return zipfile.is_zipfile(raw)


register_reader("xml", read_xml, extensions=(".xml",), options=OPTION_KEYS, check=parse_spec)

"""The Parquet reader: pyarrow's batch iterator; gzip is decompressed to a temporary file first
(Parquet needs random access), a remote file is read through its seekable stream."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from icefloe.pipelines.readers.base import MiB, Source, check_options, register_reader


def _read_parquet(src: Source, schema: dict, options: dict, batch_rows: int) -> Iterator[pa.RecordBatch]:
    check_options(options, (), "parquet")
    with contextlib.ExitStack() as stack:
        # remote: a seekable stream of ranged reads (the footer, then the column chunks)
        target: Any = src.path if src.opener is None else stack.enter_context(src.raw())
        if src.gzip:  # parquet needs random access: decompress to disk, not to memory
            target = stack.enter_context(tempfile.TemporaryFile())
            with src.open() as stream:
                shutil.copyfileobj(stream, target, MiB)
            target.seek(0)
        try:
            parquet = stack.enter_context(pq.ParquetFile(target))
            yield from parquet.iter_batches(batch_size=batch_rows)
        except (pa.ArrowException, OSError) as exc:
            raise src.error(f"corrupt parquet file: {exc}") from exc


register_reader("parquet", _read_parquet, (".parquet", ".pq"), options=())

"""Write one event's rows into Iceberg data files as they stream, committed later in one snapshot.

Memory stays at one chunk whatever the file size, and a big event becomes one data file (rolled
at the table's target file size) instead of one file per chunk. Partitioned tables split each
chunk by partition through pyiceberg's own writer instead.

Files written for an event that then fails are orphans no snapshot references; `abort` deletes
what it can, and orphan-file removal handles what a crash leaves behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pyarrow as pa
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int

from icefloe.lake.compat import dataframe_to_data_files, transaction
from icefloe.lake.evolve import align_to_table, evolve_schema, schema_change
from icefloe.lake.parquet import DataFileWriter, Encodings

__all__ = ["DataFileStream", "write_data_file"]


class DataFileStream:
    """`write(chunk)` any number of times, then `close()` for the DataFiles (or `abort()`)."""

    def __init__(
        self, open_table: Callable[[pa.Schema], Table], identifier: str, *, evolution: str = "add_columns", source: str | None = None
    ) -> None:
        self._open_table, self.identifier, self.evolution, self.source = open_table, identifier, evolution, source
        self._table: Table | None = None
        self.files: list[DataFile] = []
        self._writer: DataFileWriter | None = None
        self._path = ""
        self._bytes = 0
        self._written: list[str] = []

    @property
    def table(self) -> Table:
        assert self._table is not None
        return self._table

    def write(self, chunk: pa.Table) -> None:
        if chunk.num_rows == 0:
            return
        if self._table is None:
            self._table = self._open_table(chunk.schema)
        schema = self.table.schema()
        if schema_change(schema, chunk.schema, self.identifier, evolution=self.evolution, source=self.source) is not None:
            # a column this file's schema lacks: finish the file, evolve the table, go on
            self._finish_file()
            with transaction(self.table) as tx:
                evolve_schema(tx, schema, chunk.schema, self.identifier, evolution=self.evolution)
            schema = self.table.schema()
        aligned = align_to_table(chunk, schema)
        if not self.table.spec().is_unpartitioned():
            written = list(dataframe_to_data_files(self.table.metadata, aligned, self.table.io))
            self._written += [f.file_path for f in written]
            self.files += written
            return
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write(aligned)
        self._bytes += aligned.nbytes
        target = property_as_int(
            self.table.metadata.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        if self._bytes >= (target or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT):
            self._finish_file()

    def _open(self) -> None:
        metadata = self.table.metadata
        locations = load_location_provider(metadata.location, metadata.properties)
        self._path = locations.new_data_location(data_file_name=f"icefloe-{uuid.uuid4()}.parquet")
        self._output = self.table.io.new_output(self._path)
        self._writer = DataFileWriter(self._output, metadata.schema(), metadata.properties)
        self._written.append(self._path)
        self._bytes = 0

    def _finish_file(self) -> None:
        if self._writer is None:
            return
        self.files.append(_data_file(self._writer, self._path, self._output, self.table.metadata.default_spec_id))
        self._writer = None

    def close(self) -> list[DataFile]:
        self._finish_file()
        return self.files

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._writer = None
        if self._table is None:
            return
        for path in self._written:
            try:
                self.table.io.delete(path)
            except OSError:
                pass


def write_data_file(metadata: TableMetadata, io: FileIO, rows: pa.Table, encodings: Encodings | None = None) -> DataFile:
    """`rows` (exactly the table's Arrow schema; unpartitioned table) as one data file, written as
    DataFileStream writes (mostly-distinct columns without a dictionary), not yet committed.
    Files sharing `encodings` share the choice of those columns."""
    locations = load_location_provider(metadata.location, metadata.properties)
    path = locations.new_data_location(data_file_name=f"icefloe-{uuid.uuid4()}.parquet")
    output = io.new_output(path)
    writer = DataFileWriter(output, metadata.schema(), metadata.properties, encodings)
    try:
        writer.write(rows)
    except BaseException:
        try:
            writer.close()
        finally:
            io.delete(path)
        raise
    return _data_file(writer, path, output, metadata.default_spec_id)


def _data_file(writer: DataFileWriter, path: str, output: OutputFile, spec_id: int) -> DataFile:
    stats = writer.close()
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )

"""Reading for `lake.upsert`: some columns of one data file, as the table's current schema has them.

pyiceberg's `ArrowScan` resolves every file's schema against the table's in Python (the file's
Arrow schema converted to an Iceberg schema, pruned, projected batch by batch): ~5 ms a file, more
than decoding a 10k-row file, so most of the reading when an upsert touches 200 small files.
A file that needs none of that is read with pyarrow directly: no delete files, and each column
wanted is a top-level Parquet column whose field id is the table field's, of the table's Arrow
type (up to string/binary width; the values are cast as the scan's would be). Anything else
(position deletes, a column added after the file was written, a promoted or nested type, a file
without field ids) goes through `ArrowScan`, which handles it as pyiceberg's own reads do.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import FileFormat
from pyiceberg.table import FileScanTask
from pyiceberg.table.metadata import TableMetadata

__all__ = ["FileReader"]

_FIELD_ID = b"PARQUET:field_id"


class FileReader:
    """Reads columns of a table's data files (thread-safe: one instance per upsert)."""

    def __init__(self, meta: TableMetadata, io: FileIO) -> None:
        self.meta, self.io = meta, io
        self.schema = meta.schema()
        self.target = self.schema.as_arrow()
        self._ids = {f.name: f.field_id for f in self.schema.fields}
        self._scans: dict[tuple[str, ...], ArrowScan] = {}
        self.direct: list[str] = []  # files read without ArrowScan (tests check which way a file went)

    def read(self, task: FileScanTask, names: list[str]) -> pa.Table:
        """The columns `names` of the file's live rows, typed as the table's Arrow schema."""
        table = self._direct(task, names)
        if table is None:
            scan = self._scans.get(tuple(names))
            if scan is None:  # a projection costs a schema copy and a bind: once per column set
                scan = self._scans[tuple(names)] = ArrowScan(self.meta, self.io, self.schema.select(*names), AlwaysTrue())
            table = scan.to_table([task])
        return pa.Table.from_arrays([table[n].cast(self.target.field(n).type) for n in names], names=names)

    def _direct(self, task: FileScanTask, names: list[str]) -> pa.Table | None:
        if task.delete_files or task.file.file_format != FileFormat.PARQUET or any("." in n for n in names):
            return None  # (pyarrow takes a dotted name for a path into a struct)
        with self.io.new_input(task.file.file_path).open() as stream:
            parquet = pq.ParquetFile(stream)
            by_id: dict[int, pa.Field] = {}
            for field in parquet.schema_arrow:
                raw = (field.metadata or {}).get(_FIELD_ID)
                if raw is None or int(raw) in by_id:
                    return None  # no field ids: a name mapping decides, as ArrowScan reads it
                by_id[int(raw)] = field
            columns = []
            for name in names:
                found = by_id.get(self._ids[name])
                if found is None or not _same_type(found.type, self.target.field(name).type):
                    return None
                columns.append(found.name)
            table = parquet.read(columns=columns, use_threads=False)
        self.direct.append(task.file.file_path)
        return pa.Table.from_arrays(table.columns, names=names)


def _same_type(found: pa.DataType, wanted: pa.DataType) -> bool:
    if pa.types.is_nested(wanted) or pa.types.is_nested(found):
        return False
    if found.equals(wanted):
        return True
    widths = ((pa.string(), pa.large_string()), (pa.binary(), pa.large_binary()))
    return any(found in pair and wanted in pair for pair in widths)

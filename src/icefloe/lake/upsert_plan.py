"""Planning for `lake.upsert`: which data files may hold a batch's keys, and which of its keys.

pyiceberg prunes manifests and partitions with a coarse filter (`BatchBounds.coarse_filter`);
then each file's key bounds and key-derived partition values narrow the batch rows it could
hold, often to none. The data manifests' live entries are kept, so the commit need not read
them again (`upsert_commit.OneReadOverwrite`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions.visitors import expression_evaluator, inclusive_projection, manifest_evaluator
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFileContent, ManifestContent, ManifestEntry
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask
from pyiceberg.table.delete_file_index import DeleteFileIndex
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.utils.concurrent import ExecutorFactory

from icefloe.lake.compat import read_manifest_entries
from icefloe.lake.upsert_bounds import PRUNING_TRANSFORMS, BatchBounds

__all__ = ["FilePlanner"]


class FilePlanner:
    """The candidate files of one batch, each with the batch rows whose keys it may hold."""

    def __init__(self, meta: TableMetadata, io: FileIO, key: list[str], batch: pa.Table, bounds: BatchBounds) -> None:
        self.meta, self.io, self.key, self.batch, self.bounds = meta, io, key, batch, bounds
        self.schema = meta.schema()
        self._partitions: dict[tuple[int, int], pa.Array | None] = {}
        self.entries: dict[str, list[ManifestEntry]] = {}  # data manifest -> its live entries

    def candidates(self) -> list[tuple[FileScanTask, pa.Array]]:
        """(file, batch rows it may hold) for every file that may hold one, in key order of the
        files (rewritten rows stay clustered by key)."""
        found = [(task, idx) for task in self._plan() if len(idx := self._narrow(task))]
        found.sort(key=lambda c: self.bounds.sort_key(c[0].file))
        return found

    def _plan(self) -> list[FileScanTask]:
        """pyiceberg's planning, but keeping every live entry of the data manifests it reads."""
        snapshot = self.meta.current_snapshot()
        if snapshot is None:
            return []
        coarse = self.bounds.coarse_filter()
        specs = self.meta.specs()
        projected = {spec_id: inclusive_projection(self.schema, spec)(coarse) for spec_id, spec in specs.items()}
        partitions = {
            spec_id: expression_evaluator(Schema(*spec.partition_type(self.schema).fields), projected[spec_id], True)
            for spec_id, spec in specs.items()
        }
        manifests = [
            m for m in snapshot.manifests(self.io)
            if m.content != ManifestContent.DATA
            or manifest_evaluator(specs[m.partition_spec_id], self.schema, projected[m.partition_spec_id], True)(m)
        ]  # fmt: skip
        deletes, data = DeleteFileIndex(), []
        for manifest, entries in ExecutorFactory.get_or_create().map(lambda m: (m, read_manifest_entries(m, self.io)), manifests):
            if manifest.content == ManifestContent.DATA:
                self.entries[manifest.manifest_path] = entries
                data += [e for e in entries if partitions[e.data_file.spec_id](e.data_file.partition)]
                continue
            for entry in entries:
                if entry.data_file.content == DataFileContent.EQUALITY_DELETES:
                    raise ValueError("pyiceberg does not yet support equality deletes")
                deletes.add_delete_file(entry, partition_key=entry.data_file.partition)
        return [
            FileScanTask(
                e.data_file,
                delete_files=deletes.for_data_file(e.sequence_number or 0, e.data_file, partition_key=e.data_file.partition),
            )
            for e in data
        ]

    def _narrow(self, task: FileScanTask) -> pa.Array:
        """The batch rows whose keys this file may hold, by its bounds and partition values."""
        idx = self.bounds.candidates(task.file)
        if not len(idx):
            return idx
        spec = self.meta.specs()[task.file.spec_id]
        for pos, _ in enumerate(spec.fields):
            values = self._partition_values(task.file.spec_id, pos)
            value = task.file.partition[pos] if values is not None else None
            if values is None or value is None or isinstance(value, bool) or not isinstance(value, (int, str)):
                continue
            idx = idx.filter(pc.equal(values.take(idx), pa.scalar(value, values.type)))
            if not len(idx):
                break
        return idx

    def _partition_values(self, spec_id: int, pos: int) -> pa.Array | None:
        """A key-derived partition field computed over the batch, if it can prune."""
        if (spec_id, pos) not in self._partitions:
            field = self.meta.specs()[spec_id].fields[pos]
            source = self.schema.find_field(field.source_id)
            values = None
            if source.name in self.key and isinstance(field.transform, PRUNING_TRANSFORMS):
                column = self.batch[source.name].combine_chunks()
                values = field.transform.pyarrow_transform(source.field_type)(column)
                if not (pa.types.is_integer(values.type) or pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
                    values = None
            self._partitions[spec_id, pos] = values
        return self._partitions[spec_id, pos]

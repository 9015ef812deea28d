"""Pins the pyiceberg internals `icefloe.lake.compat` re-exports: a pyiceberg upgrade that changes
one of them fails here, by name, instead of somewhere deep in a commit."""

from __future__ import annotations

import inspect

from pyiceberg.table import Transaction

from icefloe.lake import compat


def _params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]  # type: ignore[arg-type]


def test_snapshot_producers_take_operation_transaction_io_uuid_and_properties() -> None:
    for producer in (compat.OverwriteFiles, compat.SnapshotProducer):
        assert _params(producer.__init__)[:5] == ["operation", "transaction", "io", "commit_uuid", "snapshot_properties"]
    # the hooks icefloe's own producers override or call
    for name in ("_deleted_entries", "_existing_manifests", "_summary", "append_data_file", "delete_data_file"):
        assert callable(getattr(compat.OverwriteFiles, name)), name
    assert callable(compat.SnapshotProducer._clean_all_uncommitted)


def test_data_file_writer_and_schema_projection_signatures() -> None:
    assert _params(compat.dataframe_to_data_files) == ["table_metadata", "df", "io", "write_uuid", "counter"]
    assert _params(compat.to_requested_schema)[:5] == [
        "requested_schema", "file_schema", "batch", "downcast_ns_timestamp_to_us", "include_field_ids",
    ]  # fmt: skip
    assert "format_model" in _params(compat.to_requested_schema)


def test_a_transaction_keeps_its_table_and_producers_where_compat_reads_them() -> None:
    init = inspect.getsource(Transaction.__init__)
    assert "self._table = table" in init and "self._snapshot_producers" in init and "self._updates" in init


def test_transaction_metadata_is_the_staged_updates_applied_to_the_tables_metadata() -> None:
    # NoRetryTransaction computes the same thing once per state; a pyiceberg that derives it
    # differently must be looked at again
    source = inspect.getsource(Transaction.table_metadata.fget)  # type: ignore[attr-defined]
    assert "update_table_metadata(self._table.metadata, self._updates)" in source
    assert isinstance(compat.NoRetryTransaction.table_metadata, property)


def test_staged_metadata_is_update_table_metadata_without_its_closing_copy() -> None:
    # compat.staged_metadata repeats this loop; a pyiceberg that applies updates differently
    # (a new step before the copy) must be looked at again
    from pyiceberg.table import update

    source = inspect.getsource(update.update_table_metadata)
    assert "_apply_table_update(update, new_metadata, context)" in source
    assert "model_copy(deep=True)" in source
    assert _params(update._apply_table_update)[:3] == ["update", "base_metadata", "context"]


def test_the_sql_catalog_builds_tables_in_one_place_and_commit_returns_the_new_metadata() -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    # LeanSqlCatalog serves loads from what it parsed through this hook
    assert _params(SqlCatalog._convert_orm_to_iceberg) == ["orm_table"]
    assert "self._convert_orm_to_iceberg(" in inspect.getsource(SqlCatalog.load_table)
    assert "self.load_table(" in inspect.getsource(SqlCatalog.commit_table)
    assert _params(SqlCatalog.commit_table) == ["table", "requirements", "updates"]


def test_the_catalog_stages_a_commit_as_lean_sql_catalog_repeats_it() -> None:
    # LeanSqlCatalog._update_and_stage_table and compat.committed_metadata repeat these steps
    # without the closing deep copy; a pyiceberg that stages differently must be looked at again
    from pyiceberg.catalog import MetastoreCatalog
    from pyiceberg.table import update

    stage = inspect.getsource(MetastoreCatalog._update_and_stage_table)
    assert "update_table_metadata(" in stage and "new_table_metadata_file_location(new_metadata_version)" in stage
    assert "self._parse_metadata_version(current_table.metadata_location) + 1" in stage and "StagedTable(" in stage
    source = inspect.getsource(update.update_table_metadata)
    assert "_update_table_metadata_log(new_metadata, metadata_location, base_metadata.last_updated_ms)" in source
    assert "check_compatible(new_metadata.schema())" in source
    assert _params(update._update_table_metadata_log) == ["base_metadata", "metadata_location", "last_updated_ms"]

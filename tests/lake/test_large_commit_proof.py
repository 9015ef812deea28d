"""A commit of many events keeps its proof of commit out of the table metadata (lake.events)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, committed_event_ids, open_catalog
from icefloe.lake import history as history_module
from icefloe.lake.events import EVENTS_COUNT_PROPERTY, EVENTS_FILE_PROPERTY, EVENTS_PROPERTY, INLINE_MAX
from icefloe.lake.maintain import MaintenancePolicy, maintain
from icefloe.lake.maintain_orphans import remove_orphans

MANY = INLINE_MAX + 50


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return open_catalog("sqlite:///catalog.db", "warehouse", tmp_path)


def _batch(prefix: str, count: int, empty: tuple[int, ...] = ()) -> list[Staged]:
    out = []
    for n in range(count):
        rows = 0 if n in empty else 1
        data = pa.table({"id": pa.array([n] * rows, pa.int64()), "_icefloe_event": [f"{prefix}{n}"] * rows, "_icefloe_source": [f"src:{prefix}{n}"] * rows})
        out.append(Staged(f"{prefix}{n}", f"src:{prefix}{n}", data))
    return out


def _forget_histories() -> None:
    """What a fresh worker process knows of the tables: nothing."""
    history_module._histories.clear()


def _event_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("warehouse/**/metadata/icefloe-events-*.json"))


def test_many_events_go_to_a_file_the_summary_names_and_the_metadata_stays_small(catalog: Catalog, tmp_path: Path) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    snapshot_id, done = writer.commit(_batch("e", MANY))
    assert len(done) == MANY
    table = catalog.load_table("s.t")
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary[EVENTS_PROPERTY] is None
    assert summary[EVENTS_COUNT_PROPERTY] == str(MANY)
    [events_file] = _event_files(tmp_path)
    assert summary[EVENTS_FILE_PROPERTY].endswith(events_file.name)
    assert json.loads(events_file.read_text())["events"] == [f"e{n}" for n in range(MANY)]
    # the metadata holds no id: what every later commit copies does not grow with the batch
    assert "e1," not in Path(table.metadata_location.removeprefix("file://")).read_text()
    _forget_histories()
    assert dict(committed_event_ids(catalog.load_table("s.t"))) == {f"e{n}": snapshot_id for n in range(MANY)}


def test_a_small_commit_still_lists_its_ids_inline(catalog: Catalog, tmp_path: Path) -> None:
    TableWriter(catalog, WriteConfig(table="s.t")).commit(_batch("e", 3))
    summary = catalog.load_table("s.t").current_snapshot().summary  # type: ignore[union-attr]
    assert summary[EVENTS_PROPERTY] == "e0,e1,e2" and summary[EVENTS_FILE_PROPERTY] is None
    assert _event_files(tmp_path) == []


def test_a_second_delivery_of_a_large_batch_writes_nothing(catalog: Catalog) -> None:
    """A crash between the table commit and the ledger update, then the same events again."""
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    writer.commit(_batch("e", MANY))
    _forget_histories()
    again = TableWriter(catalog, WriteConfig(table="s.t"))
    _, done = again.commit(_batch("e", MANY) + _batch("f", 2))
    assert done == ["f0", "f1"]
    assert catalog.load_table("s.t").scan().to_arrow().num_rows == MANY + 2


def test_a_lost_events_file_falls_back_to_the_event_column_of_the_added_files(catalog: Catalog, tmp_path: Path) -> None:
    """Another engine's orphan cleanup does not know the file: the rows still prove their events."""
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    snapshot_id, _ = writer.commit(_batch("e", MANY, empty=(7,)))
    writer.commit(_batch("x", 2))  # a later snapshot whose added files must not be read as the first's
    [events_file] = _event_files(tmp_path)
    events_file.unlink()
    _forget_histories()
    history = committed_event_ids(catalog.load_table("s.t"))
    assert {e for e, s in history.items() if s == snapshot_id} == {f"e{n}" for n in range(MANY) if n != 7}
    # the same delivery again: only the event without rows is not proven (the ledger is its
    # first line); committing it again adds nothing
    _, done = TableWriter(catalog, WriteConfig(table="s.t")).commit(_batch("e", MANY, empty=(7,)))
    assert done == ["e7"]
    assert catalog.load_table("s.t").scan().to_arrow().num_rows == MANY - 1 + 2


def test_a_commit_that_lost_its_race_deletes_its_events_file(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = TableWriter._transact, []

    def conflict_once(self: TableWriter, *args: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise CommitFailedException("raced")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(TableWriter, "_transact", conflict_once)
    TableWriter(catalog, WriteConfig(table="s.t")).commit(_batch("e", MANY))
    assert len(calls) == 2
    [events_file] = _event_files(tmp_path)
    summary = catalog.load_table("s.t").current_snapshot().summary  # type: ignore[union-attr]
    assert summary[EVENTS_FILE_PROPERTY].endswith(events_file.name)


def test_expiry_hands_the_events_over_then_deletes_the_file_and_orphans_keep_live_ones(catalog: Catalog, tmp_path: Path) -> None:
    writer = TableWriter(catalog, WriteConfig(table="s.t"))
    first, _ = writer.commit(_batch("a", MANY))
    writer.commit(_batch("b", MANY))
    assert len(_event_files(tmp_path)) == 2
    # the sweep of unreferenced files keeps both lists: their snapshots are live
    assert remove_orphans(catalog.load_table("s.t"), min_age=0, now=time.time() + 60).removed == 0
    assert len(_event_files(tmp_path)) == 2
    handed: dict[str, int] = {}

    def record(ids: dict[str, int]) -> None:
        handed.update(ids)

    maintain(catalog, "s.t", MaintenancePolicy(keep_snapshots=1), actions=("expire",), on_expire=record)
    assert handed == {f"a{n}": first for n in range(MANY)}
    [left] = _event_files(tmp_path)
    assert catalog.load_table("s.t").current_snapshot().summary[EVENTS_FILE_PROPERTY].endswith(left.name)  # type: ignore[union-attr]
    _forget_histories()
    assert set(committed_event_ids(catalog.load_table("s.t"))) == {f"b{n}" for n in range(MANY)}

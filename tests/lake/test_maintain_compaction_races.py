"""A compaction racing ordinary commits: it commits again keeping every row, drops only the bin a
racing replace took an input from, gives up cleanly, and goes in under the committer's lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Operation

from icefloe.config import WriteConfig
from icefloe.lake import Staged, TableWriter, maintain_compact, open_catalog
from icefloe.lake.maintain import maintain
from tests.lake.maintaining import ONLY_COMPACT, T, commit_each, data_paths, ids_of, local, policy, staged


@pytest.fixture
def other(tmp_path: Path) -> TableWriter:
    """Another committer of the table, on a catalog connection of its own (another worker)."""
    return TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T))


def _race(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]) -> None:
    monkeypatch.setattr(maintain_compact, "_before_commit", action)


def test_compaction_that_races_an_append_commits_again_and_keeps_every_row(
    catalog: Catalog, other: TableWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_each(catalog, range(6))
    attempts: list[int] = []

    def append_first_time(attempt: int) -> None:
        attempts.append(attempt)
        if attempt == 0:  # lands between our read of the files and our commit
            other.commit([staged(50)])

    _race(monkeypatch, append_first_time)
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert attempts == [0, 1] and (report.files_compacted, report.files_written) == (6, 1)
    assert ids_of(table) == sorted([*(n * 100 + i for n in range(6) for i in range(3)), 5000, 5001, 5002])
    assert len(data_paths(table)) == 2  # the compacted file and the racing append's
    operations = [s.summary.operation for s in table.metadata.snapshots[-2:]]  # type: ignore[union-attr]
    assert operations == [Operation.APPEND, Operation.REPLACE]


def test_compaction_that_raced_only_appends_commits_again_without_reading_every_manifest(
    catalog: Catalog, other: TableWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the re-check runs while the committer waits for it (the commit gate): only a commit that
    # could have taken an input (not an append) needs the manifests read again
    commit_each(catalog, range(6))
    full_checks: list[int] = []
    still_valid = maintain_compact._still_valid
    monkeypatch.setattr(maintain_compact, "_still_valid", lambda *a: full_checks.append(1) or still_valid(*a))
    _race(monkeypatch, lambda attempt: [other.commit([staged(50 + i)]) for i in range(2)] if attempt == 0 else None)
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert full_checks == [] and (report.files_compacted, report.files_written) == (6, 1)
    assert len(ids_of(table)) == 8 * 3 and len(data_paths(table)) == 3


def test_compaction_drops_the_bin_a_racing_replace_took_an_input_from(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = TableWriter(catalog, WriteConfig(table=T, mode="replace_source", partition=["p"]))
    for n in range(6):
        writer.commit([staged(n, p="a" if n < 3 else "b")])
    other = TableWriter(open_catalog("sqlite:///catalog.db", "warehouse", tmp_path), WriteConfig(table=T, mode="replace_source"))
    relanded = Staged("e1-again", "src:1", pa.table({
        "id": [7], "v": ["new"], "p": ["a"], "_icefloe_event": ["e1-again"], "_icefloe_source": ["src:1"],
    }))  # fmt: skip
    _race(monkeypatch, lambda attempt: other.commit([relanded]) if attempt == 0 else None)
    data_dir = local(catalog.load_table(T).location()) / "data"
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert (report.files_compacted, report.files_written) == (3, 1)  # partition b only
    assert any("racing commit" in note for note in report.notes)
    assert ids_of(table) == [0, 1, 2, 7, 200, 201, 202, 300, 301, 302, 400, 401, 402, 500, 501, 502]
    # the dropped bin's output file is gone, not left as an orphan
    assert len(list(data_dir.rglob("icefloe-compact-*"))) == 1


def test_compaction_gives_up_cleanly_when_every_attempt_loses_the_race(
    catalog: Catalog, other: TableWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_each(catalog, range(4))
    monkeypatch.setattr(maintain_compact, "ATTEMPTS", 3)
    _race(monkeypatch, lambda attempt: other.commit([staged(60 + attempt)]))
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT)
    table = catalog.load_table(T)
    assert report.files_compacted == 0 and any("gave up" in note for note in report.notes)
    assert len(ids_of(table)) == 4 * 3 + 3 * 3 and len(data_paths(table)) == 7
    assert not list((local(table.location()) / "data").rglob("icefloe-compact-*"))


def test_compaction_that_lost_a_race_goes_in_under_the_committers_lock_against_a_steady_stream(
    catalog: Catalog, other: TableWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committer that commits before every attempt, but takes the lock its worker's maintenance
    shares with it (`exclusive`): after the first lost race the compaction holds it and goes in."""
    commit_each(catalog, range(4))
    gate = threading.Lock()
    racing: list[int] = []

    def commit_unless_held(attempt: int) -> None:
        if gate.acquire(blocking=False):
            try:
                other.commit([staged(60 + attempt)])
                racing.append(attempt)
            finally:
                gate.release()

    _race(monkeypatch, commit_unless_held)
    report = maintain(catalog, T, policy(), actions=ONLY_COMPACT, exclusive=lambda: gate)
    table = catalog.load_table(T)
    assert racing == [0] and report.files_compacted == 4 and report.files_written == 1
    assert len(ids_of(table)) == 4 * 3 + 3 and len(data_paths(table)) == 2

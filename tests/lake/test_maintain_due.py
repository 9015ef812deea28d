"""When a maintenance run is due: after N commits, after N small files, what piled up since the
last run, a vetoed run, and the schedule."""

from __future__ import annotations

import pytest
from pyiceberg.catalog import Catalog

from icefloe.lake.maintain import Maintainer, maintain
from tests.lake.maintaining import T, commit_each, policy, staged


def test_maintainer_is_due_after_n_commits_and_starts_counting_again_after_a_run(catalog: Catalog) -> None:
    writer = commit_each(catalog, range(0))
    maintainer = Maintainer(catalog, {T: policy(every_commits=3, small_files=0)}, policy())
    due = []
    for n in range(3):
        writer.commit([staged(n)])
        due.append(maintainer.after_commit(T))
    assert due == [False, False, True]
    maintainer.run(T)
    assert not maintainer.due(T)
    writer.commit([staged(9)])
    assert not maintainer.after_commit(T, catalog.load_table(T))


def test_maintainer_counts_small_files_from_what_each_commit_added(catalog: Catalog) -> None:
    writer = commit_each(catalog, range(0))
    maintainer = Maintainer(catalog, {}, policy(every_commits=0, small_files=3))
    due = []
    for n in range(3):
        table = writer.load()
        writer.commit([staged(n)], table=table)
        due.append(maintainer.after_commit(T, table))
    assert due == [False, False, True]
    big = Maintainer(catalog, {}, policy(every_commits=0, small_files=3, small_file_bytes=1))
    assert not big.due(T, catalog.load_table(T))


def test_a_new_maintainer_picks_up_what_piled_up_since_the_last_run(catalog: Catalog) -> None:
    commit_each(catalog, range(2))
    maintain(catalog, T, policy())
    commit_each(catalog, range(10, 14))
    maintainer = Maintainer(catalog, {}, policy(every_commits=4, small_files=0))
    assert maintainer.due(T, catalog.load_table(T))
    assert not Maintainer(catalog, {}, policy(every_commits=5, small_files=0)).due(T, catalog.load_table(T))


def test_a_vetoed_run_still_restarts_the_count_so_it_is_not_retried_after_every_commit(catalog: Catalog) -> None:
    commit_each(catalog, range(4))
    commits = [s.snapshot_id for s in catalog.load_table(T).metadata.snapshots]
    maintainer = Maintainer(catalog, {}, policy(every_commits=2, small_files=0, keep_snapshots=1))
    assert maintainer.due(T, catalog.load_table(T))

    def refuse(ids: dict[str, int]) -> None:
        raise RuntimeError("ledger busy")

    with pytest.raises(RuntimeError):
        maintainer.run(T, on_expire=refuse)
    table = catalog.load_table(T)
    assert not maintainer.due(T) and all(table.snapshot_by_id(i) is not None for i in commits)


def test_maintainer_schedule_counts_from_the_last_run(catalog: Catalog) -> None:
    commit_each(catalog, range(1))
    maintainer = Maintainer(catalog, {}, policy(every=60.0, every_commits=0, small_files=0))
    report = maintainer.run(T)
    assert not maintainer.due(T, now=report.ended + 59)
    assert maintainer.due(T, now=report.ended + 61)

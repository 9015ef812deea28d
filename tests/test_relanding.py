"""Issue 8 item 3: an object that changes back to bytes it had before is a new version, and the
newest landing wins in every mode; the current version delivered again is still a no-op."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import ORDERS, make_project

MODES = {
    "append": {"table": "sales.orders"},
    "replace_source": {"table": "sales.orders", "mode": "replace_source"},
    "overwrite": {"table": "sales.orders", "mode": "overwrite"},
    "upsert": {"table": "sales.orders", "mode": "upsert", "key": ["id"]},
}
A = "id,ts,amount\n1,2026-01-01 00:00:00,1.00\n2,2026-01-01 00:00:00,1.00\n"
B = "id,ts,amount\n1,2026-01-01 00:00:00,2.00\n2,2026-01-01 00:00:00,2.00\n"


def _project(tmp_path: Path, mode: str) -> Project:
    return Project(make_project(tmp_path / "p", {"orders": {**ORDERS, "write": MODES[mode]}}))


def _file(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / f"in{len(list(tmp_path.glob('in*')))}"
    folder.mkdir()
    path = folder / "r.csv"
    path.write_text(text)
    return path


def _amounts(project: Project) -> list[tuple[int, str]]:
    rows = project.sql("select id, amount from sales.orders order by id").to_pylist()
    return [(r["id"], str(r["amount"])) for r in rows]


@pytest.mark.parametrize("mode", list(MODES))
def test_landing_an_earlier_version_again_wins(tmp_path: Path, mode: str) -> None:
    project = _project(tmp_path, mode)
    (first,) = project.ingest([_file(tmp_path, A)])
    (second,) = project.ingest([_file(tmp_path, B)])
    assert _amounts(project) == [(1, "2.00"), (2, "2.00")]
    (third,) = project.ingest([_file(tmp_path, A)])
    assert third.state == "committed"
    assert len({first.id, second.id, third.id}) == 3  # once: the third landing had the first's id
    assert _amounts(project) == [(1, "1.00"), (2, "1.00")]  # once: B's rows stayed
    assert project.ledger.get(first.id).state == "committed"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", list(MODES))
def test_the_current_version_delivered_again_is_a_no_op(tmp_path: Path, mode: str) -> None:
    project = _project(tmp_path, mode)
    project.ingest([_file(tmp_path, A)])
    project.ingest([_file(tmp_path, B)])
    (current,) = project.ingest([_file(tmp_path, A)])
    snapshots = len(project.history("sales.orders"))
    (again,) = project.ingest([_file(tmp_path, A)])  # `ingest` of the same file twice
    assert again.id == current.id
    # and through the folder: a new inode and mtime, the same bytes, found by a restart's scan
    target = project.root / "landing" / "r.csv"
    (project.root / "landing" / "r.csv.tmp").write_text(A)
    os.replace(project.root / "landing" / "r.csv.tmp", target)
    Project(project.root).run(once=True)
    assert len(project.history("sales.orders")) == snapshots
    assert len(project.ledger.events()) == 3
    assert _amounts(project) == [(1, "1.00"), (2, "1.00")]


def test_run_once_takes_an_earlier_version_written_back_into_the_folder(tmp_path: Path) -> None:
    project = _project(tmp_path, "replace_source")
    path = project.root / "landing" / "r.csv"
    for text in (A, B, A):
        path.write_text(text)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 10**9))  # settled
        Project(project.root).run(once=True)
    assert _amounts(project) == [(1, "1.00"), (2, "1.00")]
    assert [e.state for e in project.ledger.events()] == ["committed"] * 3

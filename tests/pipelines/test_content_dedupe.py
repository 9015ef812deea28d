"""Issue 8 item 8: `dedupe: {content: true}` keeps the same bytes under another name from being
loaded again (per pipeline); without it (the default) every object is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.errors import ConfigError
from tests.helpers import ORDERS, make_project

TEXT = "id,ts,amount\n1,2026-01-01 00:00:00,1.00\n2,2026-01-01 00:00:00,2.00\n"


def _files(tmp_path: Path, *names: str, text: str = TEXT) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def _count(project: Project) -> int:
    return int(project.sql("select count(*) as n from sales.orders").to_pylist()[0]["n"])


def test_the_same_bytes_under_another_name_are_not_loaded_again(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": {**ORDERS, "dedupe": {"content": True}}}))
    (first,) = project.ingest(_files(tmp_path, "a.csv"))
    (copy,) = project.ingest(_files(tmp_path, "copy-of-a.csv"))
    assert first.state == "committed"
    assert copy.state == "discarded" and copy.error_kind == "Duplicate"
    assert "landing:a.csv" in (copy.error or "") and first.id in (copy.error or "")
    assert _count(project) == 2  # once: 4
    (other,) = project.ingest(_files(tmp_path, "b.csv", text=TEXT.replace("2.00", "3.00")))
    assert other.state == "committed" and _count(project) == 4


def test_copies_landing_together_load_once(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "dedupe": {"content": True, "key": ["id"]}}})
    for name in ("x.csv", "y.csv", "z.csv"):
        (root / "landing" / name).write_text(TEXT)
    project = Project(root)
    project.run(once=True)
    assert sorted(e.state for e in project.ledger.events()) == ["committed", "discarded", "discarded"]
    assert _count(project) == 2


def test_by_default_every_object_is_loaded(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": ORDERS}))
    project.ingest(_files(tmp_path, "a.csv", "copy-of-a.csv"))
    assert _count(project) == 4


def test_bytes_an_object_has_since_replaced_are_no_duplicate(tmp_path: Path) -> None:
    project = Project(make_project(tmp_path / "p", {"orders": {**ORDERS, "dedupe": {"content": True}}}))
    project.ingest(_files(tmp_path, "a.csv"))
    project.ingest(_files(tmp_path / "v2", "a.csv", text=TEXT.replace("2.00", "5.00")))  # a.csv's rows replaced
    (copy,) = project.ingest(_files(tmp_path, "old-a.csv"))
    assert copy.state == "committed" and _count(project) == 4


def test_dedupe_needs_a_key_or_content(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": {**ORDERS, "dedupe": {"keep": "first"}}})
    with pytest.raises(ConfigError, match=r"icefloe.yaml:\d+: pipelines.orders.dedupe"):
        Project(root)

"""A file no route matched is kept as `unrouted`; once the config routes it, the next run loads it."""

from __future__ import annotations

from pathlib import Path

import yaml

from icefloe import Project
from tests.helpers import make_project


def _routes(root: Path, match: str) -> None:
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    config["routes"] = [{"source": "landing", "match": match, "pipeline": "rows"}]
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config))


def test_a_file_unrouted_before_a_route_fix_is_loaded_by_the_next_run(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"rows": {"write": {"table": "t.rows"}}})
    _routes(root, "orders/*.csv")
    (root / "landing" / "q.csv").write_text("id\n1\n2\n")
    with Project(root) as project:
        project.run(once=True)
        assert [e.state for e in project.ledger.events()] == ["unrouted"]
    _routes(root, "*.csv")  # the user fixes the route
    with Project(root) as project:
        summary = project.run(once=True)
        assert summary.committed == 1
        assert [(e.pipeline, e.state) for e in project.ledger.events()] == [("rows", "committed")]
        assert project.sql("select count(*) as n from t.rows").to_pylist() == [{"n": 2}]
        project.run(once=True)  # nothing more to do: not loaded twice
        assert project.sql("select count(*) as n from t.rows").to_pylist() == [{"n": 2}]


def test_a_still_unroutable_file_stays_unrouted_and_is_not_hashed_again(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"rows": {"write": {"table": "t.rows"}}})
    _routes(root, "orders/*.csv")
    (root / "landing" / "q.csv").write_text("id\n1\n")
    for _ in range(2):
        with Project(root) as project:
            project.run(once=True)
            assert [e.state for e in project.ledger.events()] == ["unrouted"]

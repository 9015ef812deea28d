"""`trace` takes the file an event came from, not only its id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_NOT_FOUND
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project


def _traced(capsys: pytest.CaptureFixture[str], root: Path, ref: str) -> list[str]:
    code, out, err = invoke(capsys, "trace", "-p", str(root), "--format", "json", ref)
    assert code == 0, err
    return [s["step"] for s in json.loads(out)]


def test_trace_by_source_key_key_path_or_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    csv_file(root / "landing" / "orders" / "2026" / "a.csv", "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    project = Project(root)
    project.run(once=True)
    (event,) = project.ledger.events()
    expected = [s.step for s in project.ledger.steps(event.id)]
    assert expected[-1] == "committed"
    monkeypatch.chdir(tmp_path)
    for ref in ("landing:orders/2026/a.csv", "orders/2026/a.csv", "a.csv", "p/landing/orders/2026/a.csv",
                str(root / "landing" / "orders" / "2026" / "a.csv"), "landing/orders/2026/a.csv"):  # fmt: skip
        assert _traced(capsys, root, ref) == expected, ref
    code, out, _ = invoke(capsys, "trace", "-p", str(root), "a.csv")
    assert code == 0 and f"event {event.id}  landing:orders/2026/a.csv -> orders  [committed]" in out

    code, _, err = invoke(capsys, "trace", "-p", str(root), "nope.csv")
    assert code == EXIT_NOT_FOUND and "nope.csv" in err
    project.close()


def test_an_object_with_several_events_traces_the_newest_and_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    path = root / "landing" / "a.csv"
    project = Project(root)
    csv_file(path, "id,ts,amount", ["1,2026-01-01 00:00:00,1"])
    project.run(once=True)
    csv_file(path, "id,ts,amount", ["1,2026-01-01 00:00:00,1", "2,2026-01-01 00:00:00,x"])  # a new, bad version
    project.run(once=True)
    first, second = sorted(project.ledger.events(), key=lambda e: e.landed_at)
    assert (first.state, second.state) == ("committed", "dead")

    found = project.trace("landing:a.csv")
    assert found["event"]["id"] == second.id
    assert [e["event"] for e in found["events"]] == [second.id, first.id]

    code, out, _ = invoke(capsys, "trace", "-p", str(root), "a.csv")
    assert code == 0 and f"event {second.id}" in out and "[dead]" in out
    assert "events of this object, newest first" in out
    assert out.index(second.id, out.index("newest first")) < out.index(first.id, out.index("newest first"))
    project.close()

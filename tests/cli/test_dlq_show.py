"""`dlq show` prints one event as a field per line, with its error in full."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from icefloe import Project
from tests.cli.invoke import invoke
from tests.helpers import ORDERS, csv_file, make_project


def test_dlq_show_is_a_vertical_list_with_the_whole_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    bad = csv_file(tmp_path / "a-rather-long-file-name-so-the-error-is-long-too.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    invoke(capsys, "ingest", "-p", str(root), str(bad))
    (dead,) = Project(root).dead_letters()
    assert dead.error and len(dead.error) > 120

    code, out, _ = invoke(capsys, "dlq", "show", "-p", str(root), dead.id)
    assert code == 0
    lines = out.splitlines()
    # every field on a line of its own: name, then value
    for field, value in (("id", dead.id), ("state", "dead"), ("pipeline", "orders"), ("attempts", "1"), ("error_kind", "DataError")):
        assert any(re.fullmatch(rf"\s*{field}\s+{re.escape(value)}\s*", line) for line in lines), (field, out)
    assert any(re.fullmatch(r"\s*landed_at\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s*", line) for line in lines), out
    assert dead.error in lines  # the error whole, on one line, nothing folded or cut
    assert len(lines) < 40

    # scripts still get the raw object
    code, out, _ = invoke(capsys, "dlq", "show", "-p", str(root), "--format", "json", dead.id)
    (row,) = json.loads(out)
    assert row["error"] == dead.error and row["landed_at"] == dead.landed_at

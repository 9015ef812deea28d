"""`dlq replay --now` after the user rewrote the dead file: the replayed event is superseded by the
new bytes, and the exit code and the counts tell how the new version fared."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe import Project
from icefloe.cli import EXIT_DEAD, main
from tests.helpers import ORDERS, csv_file, make_project


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _dead_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    file = csv_file(root / "landing" / "o.csv", "id,ts,amount", ["x,2026-01-01 00:00:00,1"])
    assert invoke(capsys, "run", "-p", str(root), "--once")[0] == EXIT_DEAD
    return root, file


def test_replay_now_exits_3_when_the_rewritten_file_is_still_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, file = _dead_file(tmp_path, capsys)
    csv_file(file, "id,ts,amount", ["y,2026-01-01 00:00:00,1"])  # "fixed", still not a long
    code, err = invoke(capsys, "dlq", "replay", "-p", str(root), "--all", "--now")
    assert code == EXIT_DEAD, err
    assert "committed 0, dead 1" in err
    assert [e.state for e in Project(root).dead_letters()] == ["dead"]


def test_replay_now_counts_the_rewritten_file_that_commits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, file = _dead_file(tmp_path, capsys)
    csv_file(file, "id,ts,amount", ["7,2026-01-01 00:00:00,1"])
    code, err = invoke(capsys, "dlq", "replay", "-p", str(root), "--all", "--now")
    assert code == 0, err
    assert "committed 1, dead 0, discarded 1" in err
    assert Project(root).sql("select id from sales.orders").column("id").to_pylist() == [7]

"""`icefloe ledger version|upgrade` on a ledger today's code has not opened yet."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from icefloe.ledger.migrations import LATEST
from tests.cli.invoke import invoke
from tests.helpers import make_project

FIXTURE = Path(__file__).parents[1] / "ledger" / "fixtures" / "ledger-818dcae.db"
PIPELINE = {"read": {"format": "csv"}, "write": {"table": "raw.orders"}}


def _project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "p", {"orders": PIPELINE})
    (root / ".icefloe").mkdir()
    shutil.copy(FIXTURE, root / ".icefloe" / "ledger.db")
    return root


def test_version_lists_pending_migrations_without_applying_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path)
    code, out, _ = invoke(capsys, "ledger", "version", "-p", str(root), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["version"], r["state"]) for r in rows] == [(v, "pending") for v in range(1, LATEST + 1)]
    code, out, _ = invoke(capsys, "ledger", "version", "-p", str(root))
    assert code == 0 and f"ledger schema version 0 (this icefloe: {LATEST})" in out and "icefloe ledger upgrade" in out
    con = sqlite3.connect(root / ".icefloe" / "ledger.db")
    assert [r[1] for r in con.execute("PRAGMA table_info(events)")].count("epoch") == 0  # untouched
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchall() == []
    con.close()


def test_upgrade_applies_them_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path)
    code, out, _ = invoke(capsys, "ledger", "upgrade", "-p", str(root))
    assert code == 0 and f"applied {LATEST} migration(s); the ledger is at version {LATEST}" in out
    code, out, _ = invoke(capsys, "ledger", "upgrade", "-p", str(root))
    assert code == 0 and "nothing to do" in out
    code, out, _ = invoke(capsys, "ledger", "version", "-p", str(root), "--format", "json")
    assert [r["state"] for r in json.loads(out)] == ["applied"] * LATEST


def test_a_ledger_newer_than_this_icefloe_is_refused_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path)
    assert invoke(capsys, "ledger", "upgrade", "-p", str(root))[0] == 0
    con = sqlite3.connect(root / ".icefloe" / "ledger.db")
    con.execute("INSERT INTO schema_version VALUES (?, 'later', 0)", (LATEST + 1,))
    con.commit()
    con.close()
    code, _, err = invoke(capsys, "ledger", "version", "-p", str(root))
    assert code == 1 and f"schema is version {LATEST + 1}, newer than this icefloe knows ({LATEST})" in err
    code, _, err = invoke(capsys, "status", "-p", str(root))
    assert code == 1 and "newer than this icefloe knows" in err

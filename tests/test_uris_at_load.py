"""A ledger or catalog URI icefloe cannot open is refused when the project loads, on its
icefloe.yaml line and without its password (a ledger URI was found only when the ledger opened,
with no line; both messages repeated the password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.cli import EXIT_USAGE
from tests.cli.invoke import invoke

CONFIG = """\
catalog: sqlite:///catalog.db
ledger: postgresq://ice:s3cret@db:5432/lake_ledger
sources:
  landing: {type: folder, path: landing}
"""


def test_an_unknown_ledger_scheme_is_refused_on_its_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "icefloe.yaml").write_text(CONFIG)
    code, _, err = invoke(capsys, "status", "-p", str(tmp_path))
    assert code == EXIT_USAGE
    assert "icefloe.yaml:2: ledger: unknown ledger backend 'postgresq'" in err
    assert "s3cret" not in err


def test_an_unknown_catalog_scheme_is_refused_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "icefloe.yaml").write_text("catalog: postgresqll://ice:s3cret@db:5432/lake\n")
    code, _, err = invoke(capsys, "status", "-p", str(tmp_path))
    assert code == EXIT_USAGE
    assert "icefloe.yaml:1: catalog: unknown catalog 'postgresqll://ice:***@db:5432/lake'" in err
    assert "s3cret" not in err

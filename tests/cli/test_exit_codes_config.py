"""Config mistakes are refused when the config loads (exit 2, `icefloe.yaml:LINE`), not found by
the first file that arrives as a dead event per file with exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from icefloe.cli import EXIT_USAGE
from tests.cli.invoke import invoke
from tests.helpers import csv_file

CONFIG = """\
catalog: sqlite:///catalog.db
sources:
  landing: {type: folder, path: landing}
routes:
  - {source: landing, match: "*.csv", pipeline: orders}
pipelines:
  orders:
    read:
      format: csv
      schema: {id: long, ts: timestamp, amount: "decimal(12,2)"}
      options: {delimiter: ","}
    checks:
      - not_null: [id]
    write: {table: sales.orders, mode: upsert, key: [id], partition: ["day(ts)"]}
"""

MISTAKES = {
    "format typo": ("format: csv", "format: cvs", 9, "unknown format 'cvs'"),
    "option typo": ("{delimiter: \",\"}", "{delimeter: \",\"}", 11, "unknown csv read option 'delimeter'"),
    "partition column": ("day(ts)", "day(missing_col)", 14, "names column 'missing_col'"),
    "key column": ("key: [id]", "key: [order_id]", 14, "write.key names column 'order_id'"),
    "check column": ("not_null: [id]", "not_null: [idd]", 13, "check not_null names column 'idd'"),
    "catalog scheme": ("sqlite:///catalog.db", "mysql://db/catalog", 1, "unknown catalog 'mysql://db/catalog'"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_run_once_exits_2_naming_the_line_and_processes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mistake: str
) -> None:
    good, bad, line, message = MISTAKES[mistake]
    assert good in CONFIG
    (tmp_path / "icefloe.yaml").write_text(CONFIG.replace(good, bad))
    csv_file(tmp_path / "landing/a.csv", "id,ts,amount", ["1,2026-01-01 10:00:00,2.50"])
    code, _, err = invoke(capsys, "run", "--once", "-p", str(tmp_path))
    assert code == EXIT_USAGE, err
    assert f"icefloe.yaml:{line}:" in err and message in err
    assert not (tmp_path / ".icefloe").exists()  # no ledger: nothing was landed, nothing dead-lettered


def test_the_good_config_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "icefloe.yaml").write_text(CONFIG)
    csv_file(tmp_path / "landing/a.csv", "id,ts,amount", ["1,2026-01-01 10:00:00,2.50"])
    code, _, err = invoke(capsys, "run", "--once", "-p", str(tmp_path))
    assert code == 0 and "committed 1" in err


def test_xml_record_spec_is_checked_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = CONFIG.replace("  orders:\n", "  trademarks:\n    read: {format: xml, record: case-file, fields: {a: {path: b, type: lung}}}\n    write: {table: t.marks}\n  orders:\n")
    (tmp_path / "icefloe.yaml").write_text(config)
    code, _, err = invoke(capsys, "status", "-p", str(tmp_path))
    assert code == EXIT_USAGE and "icefloe.yaml:8: pipelines.trademarks.read:" in err

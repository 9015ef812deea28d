"""Commands that read only the config, the ledger and the table files import none of the heavy
libraries: `icefloe status` took ~20 s on a busy machine, nearly all of it importing pyiceberg,
SQLAlchemy and pyarrow it did not need. Each command runs in a fresh interpreter, as from a shell."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import ORDERS, csv_file, make_project

# what a worker, the query engine or the web server need; none of these commands
HEAVY = ("pyiceberg", "sqlalchemy", "pyarrow", "duckdb", "jinja2", "starlette", "uvicorn", "opentelemetry", "boto3",
         "botocore", "nats", "prometheus_client", "lxml", "psycopg")  # fmt: skip


def _modules(root: Path, *argv: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after `icefloe ARGV -p ROOT`."""
    listing = root.parent / "modules.json"
    code = textwrap.dedent(f"""
        import json, sys
        from icefloe.cli import main
        try:
            main({[*argv, "-p", str(root)]!r})
        except SystemExit as exc:
            assert not exc.code, exc.code
        with open({str(listing)!r}, "w") as f:
            json.dump(sorted({{name.split(".")[0] for name in sys.modules}}), f)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(listing.read_text()))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lazy")
    pipeline = {**ORDERS, "write": {"table": "sales.orders", "partition": ["day(ts)"]}}
    root = make_project(base / "p", {"orders": pipeline})
    with Project(root) as p:  # a table with a snapshot, and a dead event for `dlq list`
        p.ingest([csv_file(base / "jan.csv", "id,ts,amount", ["1,2026-01-01 10:00:00,1.50"])])
        p.ingest([csv_file(base / "bad.csv", "id,ts,amount", ["one,2026-01-01 10:00:00,1.50"])])
    return root


@pytest.mark.parametrize("argv", [("status",), ("status", "--format", "json"), ("dlq", "list"), ("trace", "jan.csv")])
def test_a_ledger_command_imports_no_heavy_library(project: Path, argv: tuple[str, ...]) -> None:
    loaded = _modules(project, *argv)
    assert sorted(loaded & set(HEAVY)) == []


def test_status_still_shows_the_tables(project: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "icefloe", "status", "-p", str(project), "--format", "json"],
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    (table,) = [r for r in json.loads(done.stdout) if r["kind"] == "table"]
    assert table["name"] == "sales.orders" and table["exists"] and table["rows"] == 1 and table["data_files"] == 1


def test_config_load_checks_each_format_as_its_reader_does() -> None:
    from icefloe.pipelines.formats import BUILTIN
    from icefloe.pipelines.readers import READERS, option_check, option_names

    assert set(BUILTIN) <= set(READERS)
    for fmt, (options, check) in BUILTIN.items():
        assert option_names(fmt) == options, fmt
        assert (check is None) == (option_check(fmt) is None), fmt
    assert BUILTIN["csv"][1] is option_check("csv")

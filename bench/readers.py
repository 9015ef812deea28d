"""Compare what icefloe reads from its tables with what two independent Iceberg engines read.

    .venv/bin/python bench/readers.py PROJECT_DIR [--duck PYTHON] [--rust PYTHON] [--tables t.a,t.b]

For every table of the project's catalog and every snapshot it retains (and the current one),
the row multiset `icefloe sql "select * from T" [--as-of SNAPSHOT]` gives (through
`Project.sql`, the code that command runs) is compared with the ones read by

- DuckDB 1.5.5's iceberg extension: `iceberg_scan('<metadata.json>', snapshot_from_id=...)`;
- iceberg-rust (pyiceberg-core's DataFusion table provider), given a copy of the metadata file
  whose current snapshot (and schema) is the one under test, since that provider has no time travel.

The engines run in their own virtualenvs, never in icefloe's, so none of their packages is
an icefloe dependency. Set them up once:

    python3 -m venv /tmp/ext/duck-venv
    /tmp/ext/duck-venv/bin/pip install duckdb==1.5.5 duckdb-extension-iceberg==1.5.5 \
        duckdb-extension-avro==1.5.5 pyarrow
    python3 -m venv /tmp/ext/rust-venv
    /tmp/ext/rust-venv/bin/pip install pyiceberg-core==0.11.0 'datafusion>=54,<55' pyarrow

(DuckDB's extensions are loaded from the wheels' files, so nothing is downloaded at query time;
datafusion's major version must be the one pyiceberg-core was built against, 54 for 0.11.)
Known engine limits, not icefloe's: iceberg-rust 0.11 cannot read a data file written before a
field was added to a struct column ("Incorrect number of arrays for StructArray fields",
apache/iceberg-rust#2617), so nested-evolution tables fail there at every snapshot holding such a file.
Run with icefloe's interpreter: `.venv/bin/python bench/readers.py PROJECT`. Exit 1 on any
mismatch; every mismatch is printed with the rows only one side has.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def canon(v: Any) -> Any:
    """One value as JSON, the same whatever engine produced it (runs in the readers' venvs too)."""
    import datetime
    import decimal

    if isinstance(v, dict):
        return {k: canon(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        if v and all(
            isinstance(x, tuple) and len(x) == 2 for x in v
        ):  # a map, as pyarrow gives it
            return {str(k): canon(x) for k, x in sorted(v)}
        return [canon(x) for x in v]
    if isinstance(v, decimal.Decimal):
        return "dec:" + format(v.normalize(), "f")
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.UTC).replace(tzinfo=None)
        return "ts:" + v.isoformat()
    if isinstance(v, (datetime.date, datetime.time)):
        return "dt:" + v.isoformat()
    if isinstance(v, bytes):
        return "b:" + v.hex()
    if isinstance(v, float):
        return "f:" + repr(v)
    return v


# the head of each reader's script: `canon`, and `emit` printing a table's rows as JSON lines
_CANON = (
    "import json, sys\nfrom typing import Any\n"
    + inspect.getsource(canon)
    + """
def emit(table):
    names = table.column_names
    print(json.dumps({"columns": names}))
    for row in table.to_pylist():
        print(json.dumps([canon(row[n]) for n in names], sort_keys=True))
"""
)

_DUCK = (
    _CANON
    + r"""
import duckdb, glob, os
site = os.path.dirname(os.path.dirname(duckdb.__file__))
con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
for name in ("avro", "iceberg"):
    con.execute(f"LOAD '{glob.glob(f'{site}/duckdb_extension_{name}/extensions/*/{name}.duckdb_extension')[0]}'")
metadata, snapshot = sys.argv[1], sys.argv[2]
args = f", snapshot_from_id={int(snapshot)}" if snapshot != "-" else ""
emit(con.execute(f"select * from iceberg_scan('{metadata}'{args})").fetch_arrow_table())
"""
)

_RUST = (
    _CANON
    + r"""
from datafusion import SessionContext
from pyiceberg_core.datafusion import IcebergDataFusionTable
ctx = SessionContext()
ctx.register_table("t", IcebergDataFusionTable(["ns", "t"], "file://" + sys.argv[1], {}))
emit(ctx.sql("select * from t").to_arrow_table())
"""
)


def _canon_table(table: Any) -> tuple[list[str], collections.Counter[str]]:
    names = table.column_names
    rows = collections.Counter(
        json.dumps([canon(r[n]) for n in names], sort_keys=True)
        for r in table.to_pylist()
    )
    return names, rows


def _run(
    python: str, script: str, *args: str
) -> tuple[list[str], collections.Counter[str]] | str:
    proc = subprocess.run(
        [python, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode:
        return "ERROR " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    lines = proc.stdout.splitlines()
    return json.loads(lines[0])["columns"], collections.Counter(lines[1:])


def _at_snapshot(metadata_path: str, snapshot_id: int, folder: str) -> str:
    """A copy of the metadata file whose current snapshot (and schema) is `snapshot_id`."""
    meta = json.loads(Path(metadata_path).read_text())
    snap = next(s for s in meta["snapshots"] if s["snapshot-id"] == snapshot_id)
    meta["current-snapshot-id"] = snapshot_id
    if "schema-id" in snap:
        meta["current-schema-id"] = snap["schema-id"]
    meta.setdefault("refs", {})["main"] = {"snapshot-id": snapshot_id, "type": "branch"}
    out = Path(folder) / f"{snapshot_id}.metadata.json"
    out.write_text(json.dumps(meta))
    return str(out)


def _diff(
    label: str, mine: tuple[list[str], collections.Counter[str]], theirs: Any
) -> list[str]:
    if isinstance(theirs, str):
        return [f"{label}: {theirs}"]
    problems = []
    cols, rows = mine
    tcols, trows = theirs
    if cols != tcols:
        problems.append(f"{label}: columns differ: icefloe {cols} vs {tcols}")
        # compare on the shared columns, by name
        shared = [c for c in cols if c in tcols]
        rows = collections.Counter(
            json.dumps([json.loads(r)[cols.index(c)] for c in shared])
            for r in rows.elements()
        )
        trows = collections.Counter(
            json.dumps([json.loads(r)[tcols.index(c)] for c in shared])
            for r in trows.elements()
        )
    only_mine, only_theirs = rows - trows, trows - rows
    if only_mine or only_theirs:
        problems.append(
            f"{label}: rows differ ({sum(rows.values())} icefloe vs {sum(trows.values())}); "
            f"only icefloe: {list(only_mine.elements())[:3]}; only engine: {list(only_theirs.elements())[:3]}"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project")
    parser.add_argument("--duck", default="/tmp/ext/duck-venv/bin/python")
    parser.add_argument("--rust", default="/tmp/ext/rust-venv/bin/python")
    parser.add_argument("--tables", default="")
    args = parser.parse_args(argv)

    import icefloe

    project = icefloe.Project(args.project)
    catalog = project.catalog
    names = [n for n in args.tables.split(",") if n] or sorted(
        f"{ns[0]}.{t[-1]}"
        for ns in catalog.list_namespaces()
        for t in catalog.list_tables(ns)
    )
    problems: list[str] = []
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            table = catalog.load_table(name)
            metadata = table.metadata_location.removeprefix("file://")
            current = table.current_snapshot()
            for snap in [None, *table.metadata.snapshots]:
                sid = snap.snapshot_id if snap else None
                label = f"{name}@{sid or 'current'}"
                if sid is None and current is None:
                    continue
                op = snap.summary.operation.value if snap and snap.summary else ""
                mine = _canon_table(
                    project.sql(
                        f"select * from {name}", as_of=str(sid) if sid else None
                    )
                )
                duck = _run(args.duck, _DUCK, metadata, str(sid) if sid else "-")
                rust_meta = _at_snapshot(metadata, sid, tmp) if sid else metadata
                rust = _run(args.rust, _RUST, rust_meta)
                found = _diff(f"{label} ({op}) duckdb", mine, duck) + _diff(
                    f"{label} ({op}) iceberg-rust", mine, rust
                )
                checked += 1
                print(
                    f"{'MISMATCH' if found else 'ok      '} {label:40} {op:10} {sum(mine[1].values()):7} rows",
                    flush=True,
                )
                problems += found
    print(f"\n{checked} table states compared, {len(problems)} mismatches")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

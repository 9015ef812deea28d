"""Benchmark 12: USPTO-shaped XML -> committed Iceberg tables with the xml2arrow engine, vs lxml iterparse.

    python -m bench.xml_fast                         # ~500 MB per record size (default)
    ICEFLOE_BENCH_XML_MB=2000 python -m bench.xml_fast --big-only   # the 2 GB case, 2-3 KB records
    python -m bench --only 12

Six case-file fields (serial number, filing/registration/status dates, status code, mark) and the
classifications child table, on two files of the same size: records of 2-3 KB and of 8-12 KB
(bench.uspto with fewer or more event statements). icefloe: `Project.run(once=True)` on the landed
file (hash, land, read, write Parquet, commit both tables), once with the default engine (xml2arrow
where installed) and once with `engine: lxml`. The peer is a single-process lxml `iterparse` script
extracting exactly the same fields and child rows into typed pyarrow tables (no Parquet, no
Iceberg). Every contender runs in a fresh process whose process tree is polled for RSS; the
committed tables are checked against the peer's counts and sums, so wrong data fails the bench.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import SEED, BenchResult, dataset, log, secs, temp_dir, warm
from bench.xml import _contender, write_uspto_project

__all__ = ["READ", "TARGET_RSS_MB", "TARGET_SPEEDUP", "icefloe_contender", "peer_contender", "run"]

TARGET_SPEEDUP = 6.0
TARGET_RSS_MB = 300
START_SERIAL = 97_000_001
SHAPES = {"2-3 KB": (0, 1), "8-12 KB": (20, 34)}  # record size -> bench.uspto `events` range
BYTES = {"2-3 KB": 2_830, "8-12 KB": 9_900}  # average record size, to size a file in MB

_DATE = {"type": "date", "format": "%Y%m%d"}
READ: dict[str, Any] = {
    "format": "xml",
    "record": "case-file",
    "fields": {
        "serial_number": {"path": "serial-number", "type": "long"},
        "filing_date": {"path": "case-file-header/filing-date", **_DATE},
        "registration_date": {"path": "case-file-header/registration-date", **_DATE},
        "status_code": {"path": "case-file-header/status-code", "type": "int"},
        "status_date": {"path": "case-file-header/status-date", **_DATE},
        "mark_identification": "case-file-header/mark-identification",
    },
    "children": {
        "classifications": {
            "path": "classifications/classification",
            "fields": {"international_code": "international-code", "status_code": {"path": "status-code", "type": "int"}},
            "parent_key": ["serial_number"],
        }
    },
}


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (the reader's workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _project(root: Path, source: Path, engine: str) -> Path:
    write_uspto_project(root, source)
    config = yaml.safe_load((root / "icefloe.yaml").read_text())
    pipeline = config["pipelines"]["trademarks"]
    pipeline["read"] = {**READ, **({} if engine == "auto" else {"options": {"engine": engine}})}
    pipeline["write"]["children"] = {"classifications": "uspto.classifications"}
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


# -- contenders (run in a child process by bench.child) ---------------------------------------------


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    import pyiceberg.catalog.sql  # noqa: F401  imported before the clock starts, like the peer's

    import icefloe.engine
    import icefloe.lake.writer  # noqa: F401
    from icefloe.project import Project

    root = _project(Path(args["project"]), Path(args["source"]), args["engine"])
    started, cpu = time.perf_counter(), _cpu()
    with Project(root) as project:
        project.run(once=True)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    with Project(root) as project:
        states = sorted({e.state for e in project.ledger.events()})
        errors = [e.error for e in project.ledger.events() if e.error]
        parent = project.sql(
            "select count(*), sum(serial_number), sum(status_code), count(registration_date),"
            " count(mark_identification), count(filing_date) from uspto.case_files"
        ).to_pylist()[0]
        child = project.sql("select count(*), sum(status_code), count(international_code) from uspto.classifications").to_pylist()[0]
    summary = [*map(int, parent.values()), *map(int, child.values())]
    return {"seconds": seconds, "cpu_seconds": cpu, "states": states, "errors": errors, "summary": summary}


def peer_contender(args: dict[str, Any]) -> dict[str, Any]:
    """One process, lxml iterparse with clear-as-you-go, the same fields and child rows as READ."""
    import pyarrow.compute as pc
    from lxml import etree

    from bench.xml_baseline import _Table, _text

    fields = {"serial_number": ("serial-number", "long"), "filing_date": ("case-file-header/filing-date", "date"),
              "registration_date": ("case-file-header/registration-date", "date"),
              "status_code": ("case-file-header/status-code", "int"), "status_date": ("case-file-header/status-date", "date"),
              "mark_identification": ("case-file-header/mark-identification", "str")}  # fmt: skip
    started, cpu = time.perf_counter(), _cpu()
    parents = _Table({name: kind for name, (_, kind) in fields.items()})
    classes = _Table({"serial_number": "long", "international_code": "str", "status_code": "int"})
    with open(args["xml"], "rb") as stream:
        for _, element in etree.iterparse(stream, events=("end",), tag="case-file"):
            row = {name: _text(element, where) for name, (where, _) in fields.items()}
            parents.add(row)
            for item in element.iterfind("classifications/classification"):
                classes.add({"serial_number": row["serial_number"], "international_code": _text(item, "international-code"),
                             "status_code": _text(item, "status-code")})  # fmt: skip
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
    cases, kids = parents.table(), classes.table()
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu

    def total(table: Any, column: str) -> int:
        return int(pc.sum(table[column]).as_py() or 0)

    def count(table: Any, column: str) -> int:
        return table.num_rows - table[column].null_count

    summary = [cases.num_rows, total(cases, "serial_number"), total(cases, "status_code"), count(cases, "registration_date"),
               count(cases, "mark_identification"), count(cases, "filing_date"),
               kids.num_rows, total(kids, "status_code"), count(kids, "international_code")]  # fmt: skip
    return {"seconds": seconds, "cpu_seconds": cpu, "summary": summary}


# -- the benchmark ----------------------------------------------------------------------------------


def _file(shape: str, megabytes: float) -> Path:
    records = round(megabytes * 1e6 / BYTES[shape])

    def build(folder: Path) -> None:
        from bench.uspto import write_daily

        write_daily(folder / "daily.xml", records, seed=SEED, start_serial=START_SERIAL, events=SHAPES[shape])

    slug = shape.replace(" ", "").replace("-", "_")
    return dataset(f"uspto-fast-{slug}-{records}-s{SEED}", build) / "daily.xml"


def _icefloe(xml: Path, engine: str, label: str) -> dict[str, Any]:
    warm([xml])
    project = temp_dir("xmlfast-") / "project"
    result = _contender("bench.xml_fast:icefloe_contender", {"project": str(project), "source": str(xml.parent), "engine": engine}, label)
    assert result["states"] == ["committed"], f"{label}: {result['states']} {result['errors'][:1]}"
    return result


def run(quick: bool = False, big_only: bool = False) -> BenchResult:
    megabytes = 20.0 if quick else float(os.environ.get("ICEFLOE_BENCH_XML_MB", "500"))
    result = BenchResult(13, f"USPTO-shaped XML, ~{megabytes:g} MB, 6 fields + classifications -> 2 Iceberg tables (xml2arrow engine)")
    log(f"[12] {result.title}")
    for shape in ("2-3 KB",) if big_only else SHAPES:
        xml = _file(shape, megabytes)
        size = xml.stat().st_size / 1e6
        log(f"  [{shape}] {size:.0f} MB")
        peer = None
        if not big_only:
            warm([xml])
            peer = _contender("bench.xml_fast:peer_contender", {"xml": str(xml)}, f"lxml peer {shape}")
            log(f"  [{shape}] lxml iterparse: {peer['seconds']:.2f}s, tree peak {peer['tree_peak_mb']:.0f} MB")
        fast = _icefloe(xml, "auto", f"icefloe {shape}")
        log(f"  [{shape}] icefloe (auto): {fast['seconds']:.2f}s, tree peak {fast['tree_peak_mb']:.0f} MB")
        slow = None if big_only else _icefloe(xml, "lxml", f"icefloe-lxml {shape}")
        records = round(megabytes * 1e6 / BYTES[shape])  # serials run from START_SERIAL: their sum is known
        want = [records, records * START_SERIAL + records * (records - 1) // 2]
        assert fast["summary"][:2] == want, f"icefloe committed {fast['summary'][:2]} (rows, sum of serials), expected {want}"
        for who, res in (("icefloe", fast), ("icefloe engine: lxml", slow)):
            if res is not None and peer is not None:
                assert res["summary"] == peer["summary"], f"{who} committed other data than lxml extracted: {res['summary']} vs {peer['summary']}"
        what = f"{shape} records, {size:.0f} MB"
        result.data[shape] = {"mb": size, "peer": peer, "icefloe": fast, "icefloe_lxml": slow}
        if peer is not None:
            ratio = peer["seconds"] / fast["seconds"]
            result.row(f"throughput, {what} -> committed tables", f"{size / fast['seconds']:.0f} MB/s", f"lxml iterparse: {size / peer['seconds']:.0f} MB/s",
                       f"{ratio:.2f}x", f">= {TARGET_SPEEDUP:g}x", None if quick else ratio >= TARGET_SPEEDUP)  # fmt: skip
            result.row(f"time, {what}", secs(fast["seconds"]), f"lxml: {secs(peer['seconds'])}")
            result.row(f"CPU seconds (process tree), {what}", f"{fast['cpu_seconds']:.1f} s", f"lxml: {peer['cpu_seconds']:.1f} s",
                       f"{peer['cpu_seconds'] / fast['cpu_seconds']:.2f}x")  # fmt: skip
        else:
            result.row(f"throughput, {what} -> committed tables", f"{size / fast['seconds']:.0f} MB/s")
            result.row(f"CPU seconds (process tree), {what}", f"{fast['cpu_seconds']:.1f} s")
        if slow is not None and peer is not None:
            result.row(f"  same with engine: lxml, {shape}", f"{size / slow['seconds']:.0f} MB/s, {slow['cpu_seconds']:.1f} s CPU", "",
                       f"{peer['seconds'] / slow['seconds']:.2f}x")  # fmt: skip
        result.row(f"peak RSS, process tree, {what}", f"{fast['tree_peak_mb']:.0f} MB", f"lxml: {peer['tree_peak_mb']:.0f} MB" if peer else "",
                   "", f"<= {TARGET_RSS_MB} MB", fast["tree_peak_mb"] <= TARGET_RSS_MB)  # fmt: skip
        result.row(f"peak RSS, main process alone, {what}", f"{fast['peak_rss_mb']:.0f} MB",
                   f"engine lxml: tree {slow['tree_peak_mb']:.0f} MB, main {slow['peak_rss_mb']:.0f} MB" if slow else "")  # fmt: skip
    result.notes.append(
        "The 2 cores are shared with other sessions' work while this runs: compare the ratios (measured in the same "
        "run), not the MB/s; CPU seconds are user+system time of the contender's process and its reader workers. Times "
        "exclude interpreter start and imports; the file is pre-read into the page cache; the committed row count and "
        "serial sum are asserted" + ("." if big_only else ", and every count and sum equals the lxml script's.")
    )
    return result


if __name__ == "__main__":
    from bench.__main__ import print_results

    print_results([run(quick="--quick" in sys.argv, big_only="--big-only" in sys.argv)])

"""Benchmark 4: one big USPTO trademark XML file -> committed Iceberg tables, vs a hand-written lxml script.

icefloe end to end: the file sits on the folder source of a copy of examples/uspto-trademarks
(read spec `bench.uspto.USPTO_READ`: a parent table plus classification and owner child tables)
and `Project.run(once=True)` hashes, lands, reads, writes and commits it. The peer is
`bench/xml_baseline.py`: one process, `lxml.etree.iterparse`, the same fields and child rows into
pyarrow tables (no Iceberg at all). xmlstarlet joins when it is installed. Every contender runs in
a fresh process whose whole process tree (icefloe's reader workers included) is polled for RSS.

The committed tables are checked against start tags counted in the file and against the peer's
extraction (row counts and column sums per table); a mismatch raises, so the benchmark FAILs
rather than report the speed of wrong data.

    ICEFLOE_BENCH_XML_GB=2 python -m bench --only 4     # the 2 GB case, icefloe only (default: ~500 MB)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import psutil
import yaml

from bench.common import (
    PYTHON,
    ROOT,
    SEED,
    TMP_DIR,
    BenchResult,
    dataset,
    log,
    mb,
    run_child,
    secs,
    temp_dir,
    warm,
)

__all__ = ["TARGET_RSS_MB", "TARGET_SPEEDUP", "icefloe_contender", "icefloe_verify", "run", "write_uspto_project"]

TARGET_SPEEDUP = 2.0
TARGET_RSS_MB = 300
BYTES_PER_RECORD = 3_360  # what bench.uspto writes on average, to size a file by gigabytes
MEMBER = "apc260105.xml"
START_SERIAL = 97_000_001
FORMS = ("xml", "zip")  # the plain daily file, and the zip USPTO actually ships
POLL_SECONDS = 0.05

# the pipeline under test is the example's, so the README's numbers are what the example does
EXAMPLE_CONFIG = ROOT / "examples" / "uspto-trademarks" / "icefloe.yaml"


def _size(quick: bool) -> tuple[int, str, bool]:
    """(records, label, big): ~20 MB quick, ~500 MB by default, or ICEFLOE_BENCH_XML_GB gigabytes (big)."""
    gb = os.environ.get("ICEFLOE_BENCH_XML_GB")
    if quick:
        return 6_000, "~20 MB", False
    if not gb:
        return 150_000, "~500 MB", False
    return round(float(gb) * 1e9 / BYTES_PER_RECORD), f"~{float(gb):g} GB (ICEFLOE_BENCH_XML_GB={gb})", True


def _build(records: int, forms: tuple[str, ...]):
    def build(folder: Path) -> None:
        from bench.uspto import write_daily

        for form in forms:
            (folder / form).mkdir()
            name = MEMBER if form == "xml" else MEMBER.replace(".xml", ".zip")
            compress: Literal["none", "zip"] = "none" if form == "xml" else "zip"
            write_daily(folder / form / name, records, seed=SEED, start_serial=START_SERIAL, compress=compress, member=MEMBER)

    return build


def write_uspto_project(root: Path, source_path: Path | str) -> Path:
    """A project with the example's config (examples/uspto-trademarks), its source pointed at `source_path`."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["sources"]["landing"]["path"] = str(source_path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "icefloe.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return root


# -- contenders (run in a child process by bench.child) ---------------------------------------------


def icefloe_contender(args: dict[str, Any]) -> dict[str, Any]:
    """`Project.run(once=True)` over a source folder the daily file already sits in."""
    # imported before the clock starts, like the peer's imports
    import pyiceberg.catalog.sql  # noqa: F401

    import icefloe.engine
    import icefloe.lake.writer  # noqa: F401
    from bench.common import rss_mb
    from icefloe.project import Project

    root = write_uspto_project(Path(args["project"]), Path(args["source"]))
    start_rss = rss_mb()
    started = time.perf_counter()
    with Project(root) as project:
        project.run(once=True)
    return {"start_rss_mb": start_rss, "seconds": time.perf_counter() - started}


def icefloe_verify(args: dict[str, Any]) -> dict[str, Any]:
    """What the run committed, in the terms of `xml_baseline.summarize`, plus ledger states."""
    from icefloe.project import Project

    queries = {
        "uspto.case_files": (
            (
                "count(*), sum(serial_number), sum(status_code), count(registration_date), count(attorney_name),"
                " sum(len(owner_countries)), count(version_no)"
            ),
            ("case_files", "sum_serial_number", "sum_status_code", "registered", "with_attorney", "owner_countries", "with_header"),
        ),
        "uspto.classifications": ("count(*), sum(status_code)", ("classifications", "sum_class_status")),
        "uspto.owners": ("count(*), count(country)", ("owners", "owners_with_country")),
    }
    summary: dict[str, int] = {}
    with Project(Path(args["project"])) as project:
        for table, (select, names) in queries.items():
            values = project.sql(f"select {select} from {table}").to_pylist()[0].values()
            summary.update({name: int(value or 0) for name, value in zip(names, values, strict=True)})
        events = project.ledger.events()
        states = Counter(e.state for e in events)
        errors = [e.error for e in events if e.error]  # a retried event keeps its last error
        attempts = [e.attempts for e in events]
        snapshots = {t: len(project.catalog.load_table(t).metadata.snapshots) for t in queries}
    return {"seconds": 0.0, "summary": summary, "states": dict(states), "errors": errors, "attempts": attempts, "snapshots": snapshots}


# -- running a contender with its process tree polled -----------------------------------------------


def _tree_memory(proc: psutil.Process) -> tuple[float, float]:
    """(RSS summed over the process and its descendants, the process's own RSS), in bytes."""
    total = own = 0.0
    for member in [proc, *proc.children(recursive=True)]:
        try:
            rss = member.memory_info().rss
        except psutil.Error:  # a worker that just exited
            continue
        total += rss
        own = rss if member.pid == proc.pid else own
    return total, own


def _polled(command: list[str], label: str) -> dict[str, Any]:
    """Run `command`, sampling its tree's RSS every POLL_SECONDS; its stdout, exit code and peaks."""
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEFLOE__")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    errlog = TMP_DIR / f"xml-{label.replace(' ', '_')}.stderr"
    outlog = TMP_DIR / f"xml-{label.replace(' ', '_')}.stdout"
    tree_peak = main_peak = 0.0
    started = time.perf_counter()
    with open(outlog, "w") as out, open(errlog, "w") as err:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        proc = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                total, own = _tree_memory(proc)
            except psutil.NoSuchProcess:
                break
            tree_peak, main_peak = max(tree_peak, total), max(main_peak, own)
            time.sleep(POLL_SECONDS)
        code = child.wait()
    if code != 0:
        raise RuntimeError(f"{label} failed (exit {code}); stderr tail:\n{errlog.read_text()[-3000:]}")
    return {
        "stdout": outlog.read_text(),
        "wall_seconds": time.perf_counter() - started,
        "tree_peak_mb": tree_peak / 2**20,
        "main_polled_mb": main_peak / 2**20,
    }


def _contender(target: str, args: dict[str, Any], label: str) -> dict[str, Any]:
    """A bench.child contender with its tree polled; its result plus the peaks."""
    polled = _polled([PYTHON, "-m", "bench.child", target, json.dumps(args)], label)
    marker = "BENCH-RESULT "
    found = [line[len(marker) :] for line in polled.pop("stdout").splitlines() if line.startswith(marker)]
    if not found:
        raise RuntimeError(f"{label} printed no result")
    result: dict[str, Any] = json.loads(found[-1])
    return {**result, **polled}


def _xmlstarlet(xml: Path, records: int) -> dict[str, Any] | None:
    """xmlstarlet `sel` over the plain file (it builds the whole tree): the case-file fields, a line each."""
    exe = shutil.which("xmlstarlet")
    if exe is None:
        return None
    fields = ["serial-number", "registration-number", "transaction-date", "case-file-header/filing-date",
              "case-file-header/registration-date", "case-file-header/status-code", "case-file-header/status-date",
              "case-file-header/mark-identification", "case-file-header/attorney-name", "correspondent/address-1"]  # fmt: skip
    template = ["sel", "-T", "-t", "-m", "//case-file"]
    for field in fields:
        template += ["-v", field, "-o", "\t"]
    polled = _polled([exe, *template, "-n", str(xml)], "xmlstarlet")
    lines = polled["stdout"].count("\n")
    assert lines >= records, f"xmlstarlet printed {lines} lines for {records} records"
    return {**polled, "seconds": polled["wall_seconds"]}


# -- the benchmark ----------------------------------------------------------------------------------


def _tag_counts(path: Path, tags: tuple[bytes, ...]) -> dict[bytes, int]:
    """How often each start tag occurs in the file: a count that needs no XML parser at all."""
    counts = dict.fromkeys(tags, 0)
    keep = max(map(len, tags)) - 1
    carry = b""
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            data = carry + block
            for tag in tags:
                # a tag cut by the block edge is counted in the next round, never twice
                counts[tag] += data.count(tag) - carry.count(tag)
            carry = data[-keep:]
    return counts


def _expected(xml: Path, records: int) -> dict[str, int]:
    counts = _tag_counts(xml, (b"<case-file>", b"<classification>", b"<case-file-owner>"))
    return {
        "case_files": counts[b"<case-file>"],
        "classifications": counts[b"<classification>"],
        "owners": counts[b"<case-file-owner>"],
        # serials are consecutive from START_SERIAL
        "sum_serial_number": records * START_SERIAL + records * (records - 1) // 2,
        "with_header": records,
    }


def _compare(who: str, got: dict[str, int], want: dict[str, int]) -> None:
    """Wrong data makes the bench fail, whoever extracted it."""
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"{who} extracted other data than expected (got, expected): {wrong}"


def _run_icefloe(form: str, source: Path, path: Path) -> dict[str, Any]:
    warm([path])
    project = temp_dir(f"xml-{form}-") / "project"
    log(f"  [{form}] icefloe run --once ...")
    ours = _contender("bench.xml:icefloe_contender", {"project": str(project), "source": str(source)}, f"icefloe {form}")
    verified = run_child("bench.xml:icefloe_verify", {"project": str(project)}, label=f"verify {form}")
    ours.update({key: verified[key] for key in ("summary", "states", "errors", "attempts", "snapshots")})
    log(
        f"  [{form}] icefloe: {ours['seconds']:.2f}s, tree peak RSS {ours['tree_peak_mb']:.0f} MB, "
        f"states {ours['states']}, attempts {ours['attempts']}" + (f", last error: {ours['errors'][0][:200]}" if ours["errors"] else "")
    )
    return ours


def _run_baseline(form: str, path: Path) -> dict[str, Any]:
    warm([path])
    log(f"  [{form}] lxml iterparse baseline ...")
    peer = _contender("bench.xml_baseline:contender", {"xml": str(path)}, f"baseline {form}")
    log(f"  [{form}] baseline: {peer['seconds']:.2f}s, tree peak RSS {peer['tree_peak_mb']:.0f} MB")
    return peer


def run(quick: bool) -> BenchResult:
    records, size_label, big = _size(quick)
    # the big case shows the memory bound once: icefloe on the plain file, checked without the (slow) peer
    forms = ("xml",) if big else FORMS
    result = BenchResult(4, f"one USPTO trademark XML file, {size_label} ({records:,} case-files) -> 3 Iceberg tables")
    log(f"[4] {result.title}")
    data = dataset(f"uspto-{records}-s{SEED}", _build(records, forms))
    xml = data / "xml" / MEMBER
    xml_mb = xml.stat().st_size / 1e6
    zipped = data / "zip" / MEMBER.replace(".xml", ".zip")
    zip_mb = zipped.stat().st_size / 1e6 if zipped.exists() else 0.0
    log(f"  {xml_mb:.0f} MB of XML" + (f" ({zip_mb:.0f} MB zipped)" if zip_mb else ""))
    expected = _expected(xml, records)
    assert expected["case_files"] == records, f"the file holds {expected['case_files']} case-files, not {records}"

    runs: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for form in forms:
        path = next((data / form).iterdir())
        peer = None if big else _run_baseline(form, path)
        ours = _run_icefloe(form, data / form, path)
        # both agree with the tag counts of the file, and icefloe with every sum the peer took
        assert ours["states"] == {"committed": 1}, f"icefloe ({form}) event states {ours['states']}: {ours['errors']}"
        _compare(f"icefloe ({form})", ours["summary"], expected)
        if peer is not None:
            _compare(f"lxml ({form})", peer["summary"], {k: v for k, v in expected.items() if k in peer["summary"]})
            _compare(f"icefloe ({form}) vs lxml", ours["summary"], peer["summary"])
        runs[form] = (ours, peer)
    starlet = None if big else _xmlstarlet(xml, records)

    for form, (ours, peer) in runs.items():
        what = "plain .xml" if form == "xml" else f".zip ({zip_mb:.0f} MB)"
        if peer is not None:
            ratio = peer["seconds"] / ours["seconds"]
            peers = f"lxml: {xml_mb / peer['seconds']:.0f} MB/s"
            if starlet and form == "xml":
                peers += f"; xmlstarlet: {xml_mb / starlet['seconds']:.0f} MB/s"
            result.row(
                f"throughput, {what} -> committed tables", f"{xml_mb / ours['seconds']:.0f} MB/s", peers,
                # a quick run's small file is mostly worker start-up: the target is judged at full size
                f"{ratio:.2f}x", f">= {TARGET_SPEEDUP:g}x" + (" (full run)" if quick else ""),
                None if quick else ratio >= TARGET_SPEEDUP,
            )  # fmt: skip
            result.row(f"time, {what}", secs(ours["seconds"]), f"lxml: {secs(peer['seconds'])}")
        else:
            result.row(f"throughput, {what} -> committed tables", f"{xml_mb / ours['seconds']:.0f} MB/s")
            result.row(f"time, {what}", secs(ours["seconds"]))
        tree = ours["tree_peak_mb"]
        result.row(
            f"peak RSS, process tree, {what}", f"{tree:.1f} MB", f"lxml: {peer['tree_peak_mb']:.1f} MB" if peer else "",
            f"{tree / peer['tree_peak_mb']:.2f}x" if peer else "", f"<= {TARGET_RSS_MB} MB", tree <= TARGET_RSS_MB,
        )  # fmt: skip
        result.row(f"peak RSS, main process alone, {what}", mb(ours["peak_rss_mb"]), f"lxml: {mb(peer['peak_rss_mb'])}" if peer else "")
    if starlet is not None:  # it builds the whole document tree: memory follows file size
        result.row(
            "xmlstarlet `sel` (10 case-file fields, no Arrow, no tables)", f"{starlet['seconds']:.2f} s",
            f"peak RSS {starlet['tree_peak_mb']:.0f} MB", f"{starlet['tree_peak_mb'] / xml_mb:.1f}x the file",
        )  # fmt: skip
    got = runs["xml"][0]["summary"]
    result.row(
        "rows committed (asserted)", f"{got['case_files']:,} / {got['classifications']:,} / {got['owners']:,}",
        "case files / classifications / owners", "", "= the file's", True,
    )  # fmt: skip
    result.notes += _notes(records, xml_mb, zip_mb, big, starlet is not None)
    result.data = {
        "records": records, "xml_mb": round(xml_mb, 1), "zip_mb": round(zip_mb, 1), "expected": expected, "xmlstarlet": starlet,
        **{f"{form}_{who}": res for form, pair in runs.items() for who, res in zip(("icefloe", "lxml"), pair, strict=True)},
    }  # fmt: skip
    return result


def _notes(records: int, xml_mb: float, zip_mb: float, big: bool, starlet: bool) -> list[str]:
    zipped = f", {zip_mb:.0f} MB as the zip USPTO ships; MB/s counts uncompressed XML bytes for both forms" if zip_mb else ""
    notes = [
        f"The file is bench/uspto.py's synthetic daily file: {xml_mb:.0f} MB of XML, {records:,} case-files{zipped}.",
        (
            "icefloe: the project is examples/uspto-trademarks (its icefloe.yaml, source pointed at the file's folder); "
            "`Project.run(once=True)` hashes the file, lands it in the ledger, reads it with the xml reader (12 "
            "case-file fields, 2 header fields, classification and owner child rows; spill_bytes 8MB) and commits "
            "uspto.case_files with its two child tables (replace_source). Verified "
            "afterwards: row counts of all three tables equal the start tags counted in the file, the serial numbers "
            "sum right" + ("." if big else ", and every count and column sum equals the lxml script's.")
        ),
    ]
    if not big:
        notes.append(
            "lxml: bench/xml_baseline.py, one process, iterparse with clear-as-you-go, findtext per field, typed "
            "pyarrow columns every 65,536 records; it stops at Arrow tables (no Parquet, no Iceberg)."
            + ("" if starlet else " xmlstarlet is not installed, so it did not run.")
        )
    notes.append(
        "Each contender runs once in a fresh process (times exclude interpreter start and imports; the file is "
        "pre-read into the page cache). Peak RSS of the process tree is the sum of RSS over the process and its "
        f"descendants, polled every {POLL_SECONDS * 1000:.0f} ms (pages shared between them count once per "
        "process, so this overstates); the main process alone is its ru_maxrss."
    )
    return notes

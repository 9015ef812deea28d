"""examples/uspto-trademarks works as shipped: its sample lands, commits, and the README's queries answer right.

The expected numbers come from `bench.uspto.reference`, a plain ElementTree extraction of the same
sample, so these tests check the XML reader, child tables and the queries against an independent
reading of the file, not against numbers copied from a previous run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.uspto import PARENT, USPTO_READ, reference
from icefloe import Project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "uspto-trademarks"
SAMPLE = EXAMPLE / "landing" / "apc-sample.zip"
README_QUERY = re.compile(r'icefloe sql -p examples/uspto-trademarks "([^"]+)"')


@pytest.fixture(scope="module")
def expected() -> dict[str, list[dict[str, Any]]]:
    return reference(SAMPLE)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A fresh copy of the example (as a clone has it), run once."""
    root = tmp_path_factory.mktemp("example") / "uspto-trademarks"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("catalog.db*", "warehouse", ".icefloe"))
    with pytest.MonkeyPatch.context() as env:  # conftest's isolation is per test; this runs once per module
        for name in [n for n in os.environ if n.startswith("ICEFLOE__")]:
            env.delenv(name)
        with Project(root) as opened:
            opened.run(once=True)
            yield opened


def readme_queries() -> list[str]:
    return [" ".join(q.split()) for q in README_QUERY.findall((EXAMPLE / "README.md").read_text())]


def test_the_example_reads_what_the_benchmark_reads() -> None:
    config = yaml.safe_load((EXAMPLE / "icefloe.yaml").read_text())
    assert config["pipelines"]["trademarks"]["read"] == USPTO_READ


def test_the_sample_is_small_and_its_runtime_state_is_ignored() -> None:
    assert SAMPLE.stat().st_size < 200_000
    ignored = (EXAMPLE / ".gitignore").read_text().split()
    assert {"catalog.db", "warehouse/", ".icefloe/"} <= set(ignored)


def test_every_case_file_and_child_row_is_committed_and_nothing_is_dead(project: Project, expected: dict) -> None:
    states = Counter(e.state for e in project.ledger.events())
    assert states == {"committed": 1}
    counts = project.sql(
        "select (select count(*) from uspto.case_files) as case_files,"
        " (select count(*) from uspto.classifications) as classifications,"
        " (select count(*) from uspto.owners) as owners"
    ).to_pylist()[0]
    assert counts == {name: len(rows) for name, rows in expected.items() if name in counts}
    assert counts["case_files"] == 400
    assert project.dead_letters() == []


def test_rows_hold_the_values_of_the_file(project: Project, expected: dict) -> None:
    columns = ", ".join(USPTO_READ["fields"]) + ", " + ", ".join(USPTO_READ["header"])
    got = project.sql(f"select {columns} from uspto.case_files order by serial_number").to_pylist()
    assert got == sorted(expected[PARENT], key=lambda row: row["serial_number"])


def test_the_readme_shows_the_four_analyst_queries(project: Project) -> None:
    keys = [project.sql(query).column_names[0] for query in readme_queries()]
    assert keys == ["status_code", "international_code", "country", "month"]


@pytest.mark.parametrize("position", range(4))
def test_a_readme_query_answers_what_the_file_says(project: Project, expected: dict, position: int) -> None:
    query = readme_queries()[position]
    rows = project.sql(query).to_pylist()
    assert rows, query
    key, count = list(rows[0])[:2]
    truth = _truth(key, expected)
    for row in rows:
        assert truth[row[key]] == row[count], (query, row)
    if "limit" not in query.lower():
        assert len(rows) == len(truth)
    if key != "month":  # the others are ordered by count, biggest first: a limited answer is the top
        assert [r[count] for r in rows] == sorted(truth.values(), reverse=True)[: len(rows)]


def _truth(key: str, expected: dict) -> Counter:
    cases = expected[PARENT]
    if key == "status_code":
        return Counter(row["status_code"] for row in cases)
    if key == "international_code":
        # filings per class: a case lists a class at most once, but count distinct cases anyway
        return Counter(code for code, _ in {(r["international_code"], r["serial_number"]) for r in expected["classifications"]})
    if key == "country":
        return Counter(row["country"] or "(US state)" for row in expected["owners"])
    if key == "month":
        return Counter(row["filing_date"].strftime("%Y-%m") for row in cases)
    raise AssertionError(f"no truth for a README query keyed by {key}")


def test_owner_countries_are_filled_and_the_class_join_matches(project: Project, expected: dict) -> None:
    (empty,) = project.sql("select count(*) as n from uspto.owners where country = ''").column("n").to_pylist()
    assert empty == 0
    countries = project.sql("select count(distinct country) as n from uspto.owners").column("n").to_pylist()
    assert countries[0] >= 5
    joined = project.sql(
        "select count(*) as n from uspto.case_files f join uspto.classifications c using (serial_number)"
    ).to_pylist()
    assert joined == [{"n": len(expected["classifications"])}]


def test_ingest_reports_bytes_and_records_as_the_reader_goes(tmp_path: Path, expected: dict) -> None:
    root = tmp_path / "uspto"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("landing"))
    (root / "landing").mkdir()
    seen: list[tuple[int, int]] = []
    with Project(root) as project:
        (event,) = project.ingest([SAMPLE], on_progress=lambda ev, done, records: seen.append((done, records)))
    assert event.state == "committed"
    assert seen and seen == sorted(seen)  # bytes and records only grow
    done, records = seen[-1]
    assert records == len(expected[PARENT])
    # a zip's bytes are counted as its member is read: all but the central directory at the end
    assert 0.9 * SAMPLE.stat().st_size < done <= SAMPLE.stat().st_size

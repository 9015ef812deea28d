"""The xml2arrow engine: the same batches as the lxml engine, field for field, or lxml takes the block."""

from __future__ import annotations

import hashlib
import tempfile
import tomllib
from pathlib import Path

import pyarrow as pa
import pytest
import xml2arrow

from bench.uspto import USPTO_READ, write_daily
from bench.xml_fast import READ as BENCH_READ
from icefloe.errors import ConfigError, DataError
from icefloe.pipelines.readers import read_batches, xmlfast
from icefloe.pipelines.readers.xmlspec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
USPTO = {k: v for k, v in USPTO_READ.items() if k != "format"}
SIX = {k: v for k, v in BENCH_READ.items() if k != "format"}
PARALLEL = {"workers": 2, "chunk_bytes": 4096, "parallel_min_bytes": 0}
IN_PROCESS = {"workers": 1, "chunk_bytes": 4096}
SIMPLE = {
    "record": "r",
    "fields": {"id": {"path": "@id", "type": "long"}, "name": "name", "n": {"path": "n", "type": "int"}, "tags": {"path": "tags/t", "repeated": True}},
    "children": {"parts": {"path": "parts/p", "fields": {"code": "code", "kind": "@kind"}, "parent_key": ["id"]}},
}


@pytest.fixture
def blocks(monkeypatch):
    """Per block the fast engine was offered (in this process): True if xml2arrow took it."""
    seen: list[bool] = []
    original = xmlfast.FastParser.parse

    def spy(self, document, records):
        result = original(self, document, records)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(xmlfast.FastParser, "parse", spy)
    return seen


def read(path: Path, options: dict, engine: str) -> list[pa.RecordBatch]:
    return list(read_batches(path, fmt="xml", options={**options, "engine": engine}))


def same_under_both_engines(path: Path, options: dict) -> list[pa.RecordBatch]:
    slow, fast = read(path, options, "lxml"), read(path, options, "xml2arrow")
    assert {str(b.schema) for b in fast} == {str(b.schema) for b in slow}
    # batches may be cut differently: compare each table's rows
    def rows(batches: list[pa.RecordBatch]) -> dict[bytes, list[dict]]:
        out: dict[bytes, list[dict]] = {}
        for b in batches:
            out.setdefault((b.schema.metadata or {}).get(b"icefloe.child", b""), []).extend(b.to_pylist())
        return out

    assert rows(fast) == rows(slow)
    return fast


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def doc(*records: str) -> str:
    return '<?xml version="1.0"?>\n<root>\n' + "".join(f"  {r}\n" for r in records) + "</root>\n"


GOOD = '<r id="{i}"><name>n&amp;{i} caf&#233; Zoë</name><n> {i} </n><tags><t>a</t><t/><t>c{i}</t></tags><parts><p kind="k"><code>x{i}</code></p><p/></parts></r>'


# --- field for field on the USPTO traps ----------------------------------------------------------


@pytest.mark.parametrize("mode", [IN_PROCESS, PARALLEL], ids=["in-process", "parallel"])
@pytest.mark.parametrize("spec", [USPTO, SIX], ids=["example", "six-fields"])
def test_uspto_daily_file_is_identical_under_both_engines(tmp_path, mode, spec, blocks):
    path = tmp_path / "apc.xml"
    write_daily(path, 150, seed=5)
    batches = same_under_both_engines(path, {**spec, **mode})
    assert sum(b.num_rows for b in batches if not b.schema.metadata) == 150
    if mode is IN_PROCESS:  # xml2arrow really parsed them: every block, none fell back
        assert blocks and all(blocks)


def test_the_example_config_needs_two_passes_because_owner_countries_lie_inside_owners():
    passes = xmlfast._tables(parse_spec(USPTO))
    assert passes is not None
    assert [[t["name"] for t in tables] for tables in passes] == [["p", "f10", "f11", "c0"], ["p", "c1"]]
    assert passes[1][0]["fields"] == []  # later passes only count records


def test_values_entities_attributes_repeated_and_children_match(tmp_path, blocks):
    path = write(tmp_path / "a.xml", doc(*(GOOD.format(i=i) for i in range(40)), '<r id="99"/>', "<r id=' 7 '><n/></r>"))
    same_under_both_engines(path, {**SIMPLE, **IN_PROCESS})
    assert blocks and all(blocks)


def test_tables_on_one_container_or_inside_another_tables_field_are_parsed_in_separate_passes(tmp_path, blocks):
    options = {
        "record": "r",
        "fields": {"id": {"path": "@id", "type": "long"}, "first": "parts/p/code", "codes": {"path": "parts/p/code", "repeated": True}},
        "children": {"parts": {"path": "parts/p", "fields": {"code": "code"}, "parent_key": ["id"]},
                     "kinds": {"path": "parts/p", "fields": {"kind": "@kind"}, "parent_key": ["id"]}},
    }  # fmt: skip
    passes = xmlfast._tables(parse_spec(options))
    assert passes is not None and len(passes) >= 2
    path = write(tmp_path / "a.xml", doc(*(GOOD.format(i=i) for i in range(30))))
    same_under_both_engines(path, {**options, **IN_PROCESS})
    assert blocks and all(blocks)


TRAPS = {
    # XPath string() is all descendant text; xml2arrow's value would be the element's own text
    "mixed content": '<r id="1"><name>a<b>b</b>c</name></r>',
    "mixed content after an attribute": '<r id="1"><name x="1>2">a<b/>c</name></r>',
    # xml2arrow refuses a second match in one record; XPath takes the first
    "second match": '<r id="1"><name>first</name><name>second</name></r>',
    "crlf": '<r id="1"><name>a\r\nb</name></r>',
    "comment": '<r id="1"><name>a<!-- x -->b</name></r>',
    "cdata": '<r id="1"><name><![CDATA[<x>]]>b</name></r>',
    "namespaced": '<r id="1" xmlns:q="urn:q"><q:name>a</q:name></r>',
}


@pytest.mark.parametrize("trap", TRAPS)
def test_a_block_xml2arrow_could_read_differently_is_read_by_lxml(tmp_path, blocks, trap):
    path = write(tmp_path / "t.xml", doc(GOOD.format(i=0), TRAPS[trap], GOOD.format(i=2)))
    same_under_both_engines(path, {**SIMPLE, "workers": 1})
    assert not any(blocks)  # declined by a guard, or (markup) not even offered


def test_a_trap_costs_only_its_own_block(tmp_path, blocks):
    records = [GOOD.format(i=i) for i in range(200)]
    records[100] = TRAPS["mixed content"]
    same_under_both_engines(write(tmp_path / "t.xml", doc(*records)), {**SIMPLE, **IN_PROCESS})
    assert blocks.count(False) == 1 and blocks.count(True) >= 3, blocks


# --- errors: the same message and position as lxml -----------------------------------------------


BROKEN = {
    "bad utf-8 in a field": doc(GOOD.format(i=0), '<r id="1"><name>a\x00</name></r>').encode().replace(b"\x00", b"\xff"),
    "bad utf-8 elsewhere": doc(GOOD.format(i=0), '<r id="1"><x>a\x00</x></r>').encode().replace(b"\x00", b"\xff"),
    "undefined entity in a field": doc(GOOD.format(i=0), '<r id="1"><name>&nope;</name></r>').encode(),
    "undefined entity elsewhere": doc(GOOD.format(i=0), '<r id="1"><x>&nope;</x></r>').encode(),
    "mismatched tag": doc(GOOD.format(i=0), '<r id="1"><name>a</nam></r>').encode(),
    "bare ampersand": doc(GOOD.format(i=0), '<r id="1"><name>a & b</name></r>').encode(),
    "duplicate attribute": doc(GOOD.format(i=0), '<r id="1" id="2"/>').encode(),
    "truncated": doc(GOOD.format(i=0), GOOD.format(i=1)).encode()[:-30],
    "no closing root tag": doc(GOOD.format(i=0)).encode().replace(b"</root>\n", b""),
    "bad number": doc(GOOD.format(i=0), '<r id="x"/>').encode(),
    "nested record": doc(GOOD.format(i=0), '<r id="1"><r id="2"></r></r>').encode(),
    "empty record and a stray end tag": doc(GOOD.format(i=0), '<r id="1"/>', "</r>").encode(),
    "stray end tag between records": doc(GOOD.format(i=0), "</x>", GOOD.format(i=1)).encode(),
}


@pytest.mark.parametrize("mode", [IN_PROCESS, PARALLEL], ids=["in-process", "parallel"])
@pytest.mark.parametrize("case", BROKEN)
def test_broken_input_fails_with_the_lxml_engines_message_and_position(tmp_path, mode, case):
    path = write(tmp_path / "bad.xml", BROKEN[case])
    errors = []
    for engine in ("lxml", "xml2arrow"):
        with pytest.raises(DataError) as info:
            read(path, {**SIMPLE, **mode}, engine)
        errors.append((info.value.message, info.value.line, info.value.column))
    assert errors[0] == errors[1]
    assert errors[1][1] is not None, errors[1]


@pytest.mark.parametrize("mode", [IN_PROCESS, PARALLEL], ids=["in-process", "parallel"])
def test_a_bad_value_deep_in_a_file_is_placed_at_its_records_line_under_both_engines(tmp_path, mode):
    # the block-by-block line count (every block's newlines, records and gaps between them) must
    # add up: a record near the end of a ~100-block file, after gaps holding newlines of their own
    path = tmp_path / "apc.xml"
    write_daily(path, 300, seed=7)
    text = path.read_bytes()
    start = text.index(b"<case-file>", len(text) - 9000)
    status = text.index(b"<status-code>", start) + len(b"<status-code>")
    path.write_bytes(text[:status] + b"x" + text[status:])
    line = text.count(b"\n", 0, start) + 1
    column = start - text.rfind(b"\n", 0, start)
    for engine in ("lxml", "xml2arrow"):
        with pytest.raises(DataError, match="cannot convert") as info:
            read(path, {**SIX, **mode}, engine)
        assert (info.value.line, info.value.column) == (line, column), engine


# --- the pinned version --------------------------------------------------------------------------


GOLDEN = b"""<w><r k="1"><a>x &amp; y</a><b><c>caf\xc3\xa9</c></b></r><r><a></a><b/></r><r k="">
<a>  </a><s><t>1</t><t/><t>3</t></s></r></w>"""
GOLDEN_CONFIG = {
    "parser_options": {"trim_text": False},
    "tables": [
        {"name": "p", "xml_path": "/w", "levels": ["r"], "fields": [
            {"name": n, "xml_path": p, "data_type": "Utf8", "nullable": True}
            for n, p in (("a", "/w/r/a"), ("c", "/w/r/b/c"), ("k", "/w/r/@k"))]},
        {"name": "t", "xml_path": "/w/r/s", "levels": ["r", "v"], "fields": [
            {"name": "v", "xml_path": "/w/r/s/t", "data_type": "Utf8", "nullable": True}]},
    ],
}  # fmt: skip
# sha256 of the tables' rows as 0.19.0 gives them; a new version must be checked against it
GOLDEN_DIGEST = "3ce800fdf63dd1b8f4c5a2b6bb4bd1a9ad9aa38d1d6abdc6bbc8f9a39c9267de"


def test_xml2arrow_is_the_pinned_version_and_gives_the_golden_output():
    assert xml2arrow.__version__ == xmlfast.PINNED == xmlfast.installed()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith(f"xml2arrow=={xmlfast.PINNED};") for d in deps)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        import json

        json.dump(GOLDEN_CONFIG, out)
    try:
        tables = xml2arrow.XmlToArrowParser(out.name).parse(GOLDEN)
    finally:
        Path(out.name).unlink()
    rows = {name: tables[name].to_pylist() for name in sorted(tables)}
    # the facts the engine relies on, readable: empty text and empty attributes are missing (0.19)
    assert rows["p"] == [
        {"<r>": 0, "a": "x & y", "c": "café", "k": "1"},
        {"<r>": 1, "a": None, "c": None, "k": None},
        {"<r>": 2, "a": "  ", "c": None, "k": ""},  # an empty attribute is not missing
    ]
    assert [(r["<r>"], r["v"]) for r in rows["t"]] == [(2, "1"), (2, None), (2, "3")]
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == GOLDEN_DIGEST


# --- choosing the engine -------------------------------------------------------------------------


def test_engine_must_be_one_of_the_known_ones(tmp_path):
    path = write(tmp_path / "a.xml", doc(GOOD.format(i=0)))
    with pytest.raises(ConfigError, match="engine"):
        read(path, SIMPLE, "rust")


@pytest.mark.parametrize(
    "options",
    [
        {"record": "q:r", "fields": {"name": "name"}},
        {"record": "r", "fields": {"text": "."}},
        {"record": "r", "fields": {"ids": {"path": "x/@id", "repeated": True}}},
    ],
    ids=["prefixed record", "record text", "repeated attribute"],
)
def test_specs_xml2arrow_cannot_express_run_on_lxml_or_are_refused_when_it_is_asked_for(tmp_path, options, blocks):
    path = write(tmp_path / "a.xml", '<root xmlns:q="urn:q"><q:r><name>a</name><x id="1"/></q:r><r><name>b</name><x id="2"/></r></root>')
    assert read(path, options, "auto")  # lxml, silently
    assert blocks == []
    with pytest.raises(ConfigError, match="cannot express"):
        read(path, options, "xml2arrow")


# --- threads ---------------------------------------------------------------------------------------


def test_xml2arrow_runs_in_threads_and_closing_the_reader_early_stops_them(tmp_path):
    import threading

    path = tmp_path / "w.xml"
    write_daily(path, 200)
    reader = read_batches(path, fmt="xml", options={**USPTO, **PARALLEL})
    next(reader)
    assert len([t for t in threading.enumerate() if t.name.startswith("icefloe-xml")]) >= 1
    reader.close()
    assert [t for t in threading.enumerate() if t.name.startswith("icefloe-xml")] == []

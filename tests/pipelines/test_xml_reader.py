from __future__ import annotations

import datetime as dt
import gzip
import zipfile
from decimal import Decimal
from pathlib import Path

import psutil
import pyarrow as pa
import pytest

from bench.uspto import PARENT, USPTO_READ, reference, write_daily
from icefloe.errors import ConfigError, DataError
from icefloe.pipelines.readers import read_batches, xmlsplit
from icefloe.pipelines.readers.base import CHILD_KEY

USPTO = {k: v for k, v in USPTO_READ.items() if k != "format"}
# small blocks and no size threshold, so that even a small file is split over two worker processes
PARALLEL = {"workers": 2, "chunk_bytes": 4096, "parallel_min_bytes": 0}
IN_PROCESS = {"workers": 1}


def batches(path: Path, options: dict, **kwargs) -> list[pa.RecordBatch]:
    return list(read_batches(path, fmt="xml", options=options, **kwargs))


def tables(path: Path, options: dict, **kwargs) -> tuple[list[dict], dict[str, list[dict]]]:
    parents, children = [], {}
    for batch in batches(path, options, **kwargs):
        child = (batch.schema.metadata or {}).get(CHILD_KEY)
        if child is None:
            parents += batch.to_pylist()
        else:
            children.setdefault(child.decode(), []).extend(batch.to_pylist())
    return parents, children


def doc(*records: str, head: str = "", root: str = "<root>") -> str:
    """Line 1 declaration, line 2 the root, then `head` lines, then one record per line at column 3."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + root + "\n" + head + "".join(f"  {r}\n" for r in records) + "</root>\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def worker_processes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if any("xmlwork" in part for part in p.cmdline())]


# --- the USPTO layout, against a plain ElementTree extraction -------------------------------------


@pytest.mark.parametrize("mode", [IN_PROCESS, PARALLEL], ids=["in-process", "parallel"])
def test_generated_daily_file_equals_the_reference_extraction_field_for_field(tmp_path, mode):
    path = tmp_path / "apc.xml"
    write_daily(path, 120, seed=3)
    parents, children = tables(path, {**USPTO, **mode})
    expected = reference(path)
    assert parents == expected[PARENT]
    assert children == {"classifications": expected["classifications"], "owners": expected["owners"]}
    # the traps are really in the data: header and classification status codes differ, and so on
    assert {r["status_code"] for r in parents} >= {630} and {r["status_code"] for r in children["classifications"]} <= {6, 7, 8}
    assert any(r["registration_date"] is None for r in parents) and any(r["attorney_name"] is None for r in parents)
    assert any(r["country"] is None for r in children["owners"])  # a US state instead of a country
    assert parents[0]["version_no"] == "2.3" and parents[0]["creation_datetime"] == "202601051200"


def test_parallel_and_in_process_reads_yield_identical_batches(tmp_path):
    path = tmp_path / "apc.xml"
    write_daily(path, 150, seed=5)
    sequential = batches(path, {**USPTO, **IN_PROCESS, "chunk_bytes": 4096})
    parallel = batches(path, {**USPTO, **PARALLEL})
    assert len(parallel) == len(sequential) > 2
    for left, right in zip(sequential, parallel):
        assert left.equals(right) and left.schema.equals(right.schema, check_metadata=True)


@pytest.mark.parametrize("compress", ["gzip", "zip"])
def test_compressed_daily_files_read_like_the_plain_one(tmp_path, compress):
    plain, packed = tmp_path / "a.xml", tmp_path / f"a.{compress}"
    write_daily(plain, 60, seed=2)
    write_daily(packed, 60, seed=2, compress=compress)  # type: ignore[arg-type]
    assert tables(packed, USPTO) == tables(plain, USPTO)


def test_zip_members_are_read_in_archive_order_as_one_stream_of_records(tmp_path):
    first, second = tmp_path / "1.xml", tmp_path / "2.xml"
    write_daily(first, 30, seed=1, start_serial=100)
    write_daily(second, 20, seed=2, start_serial=500)
    archive = tmp_path / "daily.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(second, "b/apc2.XML")
        zf.writestr("notes.txt", "not xml")
        zf.write(first, "apc1.xml")
    parents, children = tables(archive, {**USPTO, **PARALLEL})
    serials = [r["serial_number"] for r in parents]
    assert serials == list(range(500, 520)) + list(range(100, 130))
    assert parents == reference(second)[PARENT] + reference(first)[PARENT]
    assert children["owners"] == reference(second)["owners"] + reference(first)["owners"]


def test_error_in_a_zip_member_names_archive_and_member(tmp_path):
    archive = tmp_path / "daily.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.xml", doc('<r id="1"/>'))
        zf.writestr("bad.xml", doc('<r id="2"/>', '<r id="x"/>'))
    with pytest.raises(DataError) as info:
        batches(archive, {"record": "r", "fields": {"id": {"path": "@id", "type": "long"}}})
    assert info.value.file == f"{archive}!bad.xml"
    assert (info.value.line, info.value.column) == (4, 3)


def test_a_corrupt_zip_member_is_a_data_error_naming_it(tmp_path):
    archive = tmp_path / "daily.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # stored, so a changed byte is only caught by the CRC
        zf.writestr("ok.xml", doc('<r id="1"/>'))
        zf.writestr("bad.xml", doc('<r id="2"><n>aaaa</n></r>'))
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b"aaaa", b"abaa"))
    with pytest.raises(DataError) as info:
        batches(archive, {"record": "r", "fields": {"n": "n"}})
    assert info.value.file == f"{archive}!bad.xml" and "CRC" in info.value.message


# --- values ---------------------------------------------------------------------------------------


def test_values_are_text_content_with_entities_attributes_and_empty_as_null(tmp_path):
    path = write(
        tmp_path / "v.xml",
        doc(
            '<r id="1" kind="a"><name>ACME <b>&amp;</b> Co &#233; 日本</name><addr line="&lt;1&gt;"/><note/></r>',
            '<r id="2"><name><![CDATA[<raw> & ]]>text</name><!-- <r id="9"> --><note>  </note></r>',
            '<r id="3"/>',
        ),
    )
    options = {
        "record": "r",
        "fields": {"id": {"path": "@id", "type": "int"}, "kind": "@kind", "name": "name", "line": "addr/@line", "note": "note"},
    }
    parents, _ = tables(path, options)
    assert parents == [
        {"id": 1, "kind": "a", "name": "ACME & Co é 日本", "line": "<1>", "note": None},
        {"id": 2, "kind": None, "name": "<raw> & text", "line": None, "note": "  "},
        {"id": 3, "kind": None, "name": None, "line": None, "note": None},
    ]


def test_same_name_at_different_depths_is_told_apart_by_path(tmp_path):
    path = write(tmp_path / "p.xml", doc("<r><code>1</code><h><code>2</code></h><c><code>3</code><code>4</code></c></r>"))
    options = {"record": "r", "fields": {"top": "code", "deep": "h/code", "first": "c/code", "all": {"path": "c/code", "repeated": True}}}
    assert tables(path, options)[0] == [{"top": "1", "deep": "2", "first": "3", "all": ["3", "4"]}]


def test_typed_fields_are_stripped_converted_and_empty_becomes_null(tmp_path):
    path = write(
        tmp_path / "t.xml",
        doc(
            "<r><i> 42 </i><l>9000000000</l><d>2.5</d><b>true</b><m>12.5</m><day>20240105</day><iso>2024-01-05</iso>"
            "<ts>05/01/2024 10:30</ts><tsi>2024-01-05T10:30:00</tsi></r>",
            "<r><i/><b>0</b><day> </day></r>",
        ),
    )
    fields = {
        "i": {"path": "i", "type": "int"},
        "l": {"path": "l", "type": "long"},
        "d": {"path": "d", "type": "double"},
        "b": {"path": "b", "type": "boolean"},
        "m": {"path": "m", "type": "decimal(10,2)"},
        "day": {"path": "day", "type": "date", "format": "%Y%m%d"},
        "iso": {"path": "iso", "type": "date"},
        "ts": {"path": "ts", "type": "timestamp", "format": "%d/%m/%Y %H:%M"},
        "tsi": {"path": "tsi", "type": "timestamp"},
    }
    table = pa.Table.from_batches(batches(path, {"record": "r", "fields": fields}))
    assert [table.schema.field(n).type for n in ("i", "l", "d", "b", "m", "day", "ts")] == [
        pa.int32(), pa.int64(), pa.float64(), pa.bool_(), pa.decimal128(10, 2), pa.date32(), pa.timestamp("us"),
    ]  # fmt: skip
    first, second = table.to_pylist()
    assert first == {
        "i": 42, "l": 9000000000, "d": 2.5, "b": True, "m": Decimal("12.50"), "day": dt.date(2024, 1, 5),
        "iso": dt.date(2024, 1, 5), "ts": dt.datetime(2024, 1, 5, 10, 30), "tsi": dt.datetime(2024, 1, 5, 10, 30),
    }  # fmt: skip
    assert second == {**dict.fromkeys(first), "b": False}


@pytest.mark.parametrize("mode", [IN_PROCESS, PARALLEL], ids=["in-process", "parallel"])
def test_a_value_that_does_not_convert_names_field_value_and_the_records_line(tmp_path, mode):
    records = [f'<r><n>{i}</n><c><v>{i}</v><v>{"x7" if i == 250 else i}</v></c></r>' for i in range(300)]
    path = write(tmp_path / "bad.xml", doc(*records))
    options = {"record": "r", "fields": {"n": {"path": "n", "type": "long"}}, **mode}
    with pytest.raises(DataError) as info:
        batches(path, {**options, "children": {"vs": {"path": "c/v", "fields": {"v": {"path": ".", "type": "int"}}}}})
    assert "'x7'" in info.value.message and "'v'" in info.value.message
    assert (info.value.line, info.value.column) == (3 + 250, 3)
    with pytest.raises(DataError) as info:
        batches(path, {**options, "fields": {"vs": {"path": "c/v", "type": "int", "repeated": True}}})
    assert "'x7'" in info.value.message and (info.value.line, info.value.column) == (253, 3)


def test_repeated_fields_are_lists_in_document_order_and_empty_when_absent(tmp_path):
    path = write(tmp_path / "l.xml", doc("<r><o><c>US</c></o><o><s>CA</s></o><o><c>DE</c></o></r>", "<r/>"))
    options = {"record": "r", "fields": {"cs": {"path": "o/c", "repeated": True}, "n": {"path": "o/c", "repeated": True, "type": "string"}}}
    table = pa.Table.from_batches(batches(path, options))
    assert table.column("cs").to_pylist() == [["US", "DE"], []]
    assert table.schema.field("cs").type == pa.large_list(pa.field("element", pa.large_string()))  # as pyiceberg reads lists


def test_children_carry_the_parent_key_first_and_are_tagged_in_schema_metadata(tmp_path):
    path = write(
        tmp_path / "c.xml",
        doc('<r><sn>7</sn><k>a</k><cls><cl code="9"><st>6</st></cl><cl code="42"/></cls></r>', "<r><sn>8</sn><k>b</k></r>"),
    )
    child = {"path": "cls/cl", "fields": {"code": "@code", "status": {"path": "st", "type": "int"}}}
    options = {"record": "r", "fields": {"sn": {"path": "sn", "type": "long"}, "k": "k"}}
    out = batches(path, {**options, "children": {"cls": child, "keyed": {**child, "parent_key": ["k", "sn"]}}})
    by_name = {(b.schema.metadata or {}).get(CHILD_KEY): b for b in out}
    assert by_name[b"cls"].to_pylist() == [{"sn": 7, "code": "9", "status": 6}, {"sn": 7, "code": "42", "status": None}]
    assert by_name[b"keyed"].schema.names == ["k", "sn", "code", "status"]
    assert by_name[None].schema.names == ["sn", "k"]


def test_header_values_are_copied_onto_every_row_and_missing_ones_are_null(tmp_path):
    head = '  <version><no>2.3</no></version>\n  <created at="2026-01-05">x</created>\n'
    path = write(tmp_path / "h.xml", doc("<r><n>1</n></r>", "<r><n>2</n></r>", head=head, root='<root day="20260105">'))
    header = {
        "version_no": "version/no",
        "created": {"path": "created/@at", "type": "date"},
        "day": {"path": "@day", "type": "date", "format": "%Y%m%d"},
        "missing": "nothing/here",
    }
    parents, _ = tables(path, {"record": "r", "fields": {"n": "n"}, "header": header})
    row = {"version_no": "2.3", "created": dt.date(2026, 1, 5), "day": dt.date(2026, 1, 5), "missing": None}
    assert parents == [{"n": "1", **row}, {"n": "2", **row}]


def test_namespaced_documents_match_fields_by_local_name(tmp_path):
    path = write(
        tmp_path / "ns.xml",
        '<root xmlns="urn:a" xmlns:p="urn:p"><r><p:n>1</p:n><m p:at="x"/></r><r><n xmlns="urn:other">2</n></r></root>',
    )
    options = {"record": "r", "fields": {"n": "n", "at": "m/@at"}}
    assert tables(path, options)[0] == [{"n": "1", "at": "x"}, {"n": "2", "at": None}]


def test_look_alike_record_tags_in_comments_cdata_and_pis_are_not_records(tmp_path):
    path = write(
        tmp_path / "m.xml",
        doc(
            '<r id="1"><!-- <r id="2"> --></r>',
            '<?pi <r id="3"> ?><r id="4"><t><![CDATA[<r id="5"/>]]></t></r>',
            '<!-- </r> --><r id="6" note="a>b"/>',
            head="  <!-- <r id='0'> -->\n",
        ),
    )
    for mode in (IN_PROCESS, {**PARALLEL, "chunk_bytes": 1024}):
        parents, _ = tables(path, {"record": "r", "fields": {"id": "@id"}, **mode})
        assert [r["id"] for r in parents] == ["1", "4", "6"]


def test_a_record_larger_than_a_block_extends_its_block(tmp_path):
    big = "<r><t>" + "x" * 20000 + "</t></r>"
    path = write(tmp_path / "big.xml", doc("<r><t>a</t></r>", big, "<r><t>b</t></r>"))
    parents, _ = tables(path, {"record": "r", "fields": {"t": "t"}, **PARALLEL, "chunk_bytes": 1024})
    assert [len(r["t"]) for r in parents] == [1, 20000, 1]


def test_the_record_may_be_the_root_element_and_a_document_may_hold_no_records(tmp_path):
    one = write(tmp_path / "one.xml", '<?xml version="1.0"?>\n<r><n>1</n></r>\n')
    none = write(tmp_path / "none.xml", doc("<other/>"))
    assert tables(one, {"record": "r", "fields": {"n": "n"}})[0] == [{"n": "1"}]
    assert batches(none, {"record": "r", "fields": {"n": "n"}}) == []


@pytest.mark.parametrize("encoding", ["iso-8859-1", "utf-16"])
def test_declared_or_bom_marked_encodings_are_read(tmp_path, encoding):
    text = f'<?xml version="1.0" encoding="{encoding}"?>\n<root><r><n>café Zoë</n></r></root>\n'
    data = text.encode(encoding) if encoding != "utf-16" else b"\xff\xfe" + text.encode("utf-16-le")
    assert tables(write(tmp_path / "e.xml", data), {"record": "r", "fields": {"n": "n"}})[0] == [{"n": "café Zoë"}]


# --- progress, workers ----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", ["none", "gzip"])
def test_progress_reports_bytes_of_the_file_and_records_so_far(tmp_path, compress):
    path = tmp_path / "p.xml"
    size = write_daily(path, 200, compress=compress)  # type: ignore[arg-type]
    calls: list[tuple[int, int]] = []
    batches(path, {**USPTO, "chunk_bytes": 8192}, progress=lambda done, rows: calls.append((done, rows)))
    assert len(calls) > 2 and calls == sorted(calls)
    assert calls[-1] == (size, 200)


def test_closing_the_reader_early_stops_its_worker_processes(tmp_path):
    path = tmp_path / "w.xml"
    write_daily(path, 200)
    before = {p.pid for p in worker_processes()}
    # worker processes are the lxml engine's (xml2arrow runs in threads: test_xml_fast)
    reader = read_batches(path, fmt="xml", options={**USPTO, **PARALLEL, "engine": "lxml"})
    next(reader)
    assert len({p.pid for p in worker_processes()} - before) == 2
    reader.close()
    assert {p.pid for p in worker_processes()} - before == set()


def test_a_worker_that_dies_fails_the_read_with_a_retryable_error(tmp_path, monkeypatch):
    monkeypatch.setattr(xmlsplit._Group, "TEXT_BYTES", 1)  # a batch per block: the read is still going
    path = tmp_path / "w.xml"
    write_daily(path, 200)
    before = {p.pid for p in worker_processes()}
    reader = read_batches(path, fmt="xml", options={**USPTO, **PARALLEL, "engine": "lxml"})
    next(reader)
    for process in worker_processes():
        if process.pid not in before:
            process.kill()
    with pytest.raises(ChildProcessError):  # an OSError: the ledger retries it
        list(reader)
    assert {p.pid for p in worker_processes()} - before == set()


def test_gzip_input_is_undone_before_parsing(tmp_path):
    path = write(tmp_path / "g.xml.gz", gzip.compress(doc("<r><n>1</n></r>").encode()))
    assert tables(path, {"record": "r", "fields": {"n": "n"}})[0] == [{"n": "1"}]


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"record": "r", "fields": {"a": "a"}, "colour": 1}, "unknown xml read option 'colour'; known: record, fields"),
        ({"fields": {"a": "a"}}, "'record' must be the element name"),
        ({"record": "r"}, "'fields' is required"),
        ({"record": "r", "fields": {}}, "at least one column"),
        ({"record": "r", "fields": {"a": {"path": "a", "type": "varchar"}}}, "unknown type 'varchar'"),
        ({"record": "r", "fields": {"a": "a//b"}}, "bad path 'a//b'"),
        ({"record": "r", "fields": {"a": "a/*"}}, "bad path 'a/*'"),
        ({"record": "r", "fields": {"a": "../a"}}, "bad path '../a'"),
        ({"record": "r", "fields": {"a": {"path": "a", "type": "long", "format": "%Y"}}}, "format applies to date"),
        ({"record": "r", "fields": {"a": {"path": "a", "colour": 1}}}, "unknown key 'colour'"),
        ({"record": "r", "fields": {"a": "a"}, "header": {"a": "b"}}, "header column 'a' is also a field"),
        ({"record": "r", "fields": {"a": "a"}, "header": {"h": {"path": "h", "repeated": True}}}, "not supported in header"),
        ({"record": "r", "fields": {"a": "a"}, "children": {"c": {"path": "c", "fields": {"x": "x"}, "parent_key": ["z"]}}}, "parent_key 'z'"),
        ({"record": "r", "fields": {"a": "a"}, "children": {"c": {"path": "c/@x", "fields": {"x": "x"}}}}, "must name elements"),
        ({"record": "r", "fields": {"a": "a"}, "workers": 0}, "'workers' must be an integer >= 1"),
        ({"record": "r", "fields": {"a": "a"}, "chunk_bytes": "lots"}, "'chunk_bytes' must be a size"),
    ],
)
def test_bad_specs_are_config_errors_that_say_what_is_wrong(tmp_path, options, message):
    path = write(tmp_path / "c.xml", doc("<r/>"))
    with pytest.raises(ConfigError) as info:
        batches(path, options)
    assert message in info.value.message


def test_sizes_may_be_written_with_units(tmp_path):
    path = write(tmp_path / "u.xml", doc("<r><a>1</a></r>"))
    assert tables(path, {"record": "r", "fields": {"a": "a"}, "chunk_bytes": "64KiB", "parallel_min_bytes": "1MB"})[0] == [{"a": "1"}]

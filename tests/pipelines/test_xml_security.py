"""Hostile and broken XML: no DTD, network or entity expansion, ever; malformed input dies with line and column."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from icefloe.errors import DataError
from icefloe.pipelines.readers import read_batches

OPTIONS = {"record": "r", "fields": {"id": {"path": "@id", "type": "long"}, "name": "name"}}
MODES = pytest.mark.parametrize(
    "mode",
    [{"workers": 1}, {"workers": 2, "chunk_bytes": 1024, "parallel_min_bytes": 0}],
    ids=["in-process", "parallel"],
)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read(path: Path, **options: object) -> list:
    return list(read_batches(path, fmt="xml", options={**OPTIONS, **options}))


def failure(path: Path, **options: object) -> DataError:
    with pytest.raises(DataError) as info:
        read(path, **options)
    return info.value


def records(count: int) -> str:
    """Line 1 declaration, line 2 root, then record i on line 3 + i at column 3 (each 40+ bytes)."""
    return "".join(f'  <r id="{i}"><name>record number {i:05d}</name></r>\n' for i in range(count))


HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<root>\n'

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE root [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<root><r id="1"><name>&lol9;</name></r></root>
"""


# --- entities, DTDs, network ------------------------------------------------------------------------


@MODES
def test_billion_laughs_is_refused_at_its_first_entity_declaration(tmp_path, mode):
    error = failure(write(tmp_path / "lol.xml", BILLION_LAUGHS), **mode)
    assert "entity declarations are not allowed" in error.message
    assert (error.line, error.column) == (3, 2)


def test_parameter_entities_are_refused_too(tmp_path):
    text = '<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY % p "x"> %p;]>\n<root><r id="1"/></root>\n'
    error = failure(write(tmp_path / "pe.xml", text))
    assert "entity declarations are not allowed" in error.message and error.line == 2


def test_an_external_entity_declaration_is_refused_and_the_file_never_read(tmp_path):
    secret = write(tmp_path / "secret.txt", "TOP-SECRET")
    text = f'<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY xxe SYSTEM "file://{secret}">]>\n<root><r id="1"><name>&xxe;</name></r></root>\n'
    error = failure(write(tmp_path / "xxe.xml", text))
    assert "entity declarations are not allowed" in error.message and "TOP-SECRET" not in str(error)


def test_an_external_dtd_is_never_opened_so_its_entities_stay_undefined(tmp_path):
    # the DTD is a FIFO: anyone opening it for reading blocks until the watcher opens the other end
    dtd = tmp_path / "evil.dtd"
    os.mkfifo(dtd)
    opened, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(dtd, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody has it open for reading
                assert exc.errno == errno.ENXIO
                time.sleep(0.002)
                continue
            opened.append(True)
            os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    text = f'<?xml version="1.0"?>\n<!DOCTYPE root SYSTEM "{dtd}">\n<root>\n<r id="1"><name>&xxe;</name></r></root>\n'
    try:
        error = failure(write(tmp_path / "doc.xml", text))
    finally:
        stop.set()
        watcher.join()
    assert opened == []
    assert "Entity 'xxe' not defined" in error.message and (error.line, error.column) == (4, 22)  # just after it


def test_a_dtd_on_the_network_is_never_fetched(tmp_path):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        for doctype in (
            f'<!DOCTYPE root SYSTEM "http://127.0.0.1:{port}/x.dtd">',
            f'<!DOCTYPE root PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:{port}/y.dtd">',
        ):
            path = write(tmp_path / "net.xml", f'<?xml version="1.0"?>\n{doctype}\n<root><r id="1"><name>n</name></r></root>\n')
            assert len(read(path)) == 1
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody ever connected
            server.accept()
    finally:
        server.close()


@MODES
def test_an_undefined_entity_in_a_record_fails_with_its_position(tmp_path, mode):
    text = HEAD + records(40) + '  <r id="40"><name>a &nope; b</name></r>\n</root>\n'
    error = failure(write(tmp_path / "u.xml", text), **mode)
    assert "Entity 'nope' not defined" in error.message and (error.line, error.column) == (43, 28)


def test_an_undefined_entity_outside_the_records_fails_too(tmp_path):
    error = failure(write(tmp_path / "h.xml", HEAD + "  <h>&nope;</h>\n" + records(2) + "</root>\n"))
    assert "Entity 'nope' not defined" in error.message and error.line == 3


# --- malformed documents -----------------------------------------------------------------------------


@MODES
def test_a_file_truncated_inside_a_record_fails_at_its_end(tmp_path, mode):
    text = HEAD + records(50) + '  <r id="50"><name>cut sh'
    error = failure(write(tmp_path / "t.xml", text), **mode)
    assert "the file ends inside the <r> opened at line 53" in error.message
    assert (error.line, error.column) == (53, 26)  # where the next character would be


@MODES
def test_a_file_truncated_after_the_last_record_fails_on_the_unclosed_root(tmp_path, mode):
    error = failure(write(tmp_path / "t.xml", HEAD + records(50)), **mode)
    assert error.message.startswith("malformed XML") and error.line == 53


@MODES
def test_a_bad_byte_in_a_record_fails_with_its_line_and_column(tmp_path, mode):
    text = (HEAD + records(60)).encode() + b'  <r id="60"><name>caf\xff</name></r>\n</root>\n'
    error = failure(write(tmp_path / "b.xml", text), **mode)
    assert "Invalid bytes" in error.message and (error.line, error.column) == (63, 23)


def test_a_bad_byte_between_records_fails_with_its_line(tmp_path):
    text = (HEAD + records(3)).encode() + b"  <x>\xfe</x>\n" + records(3).encode() + b"</root>\n"
    error = failure(write(tmp_path / "b.xml", text), workers=2, chunk_bytes=1024, parallel_min_bytes=0)
    assert error.line == 6


@MODES
def test_an_unclosed_tag_in_a_record_fails_at_the_records_end_tag(tmp_path, mode):
    text = HEAD + records(70) + '  <r id="70"><name>open</r>\n' + records(2) + "</root>\n"
    error = failure(write(tmp_path / "o.xml", text), **mode)
    assert "Opening and ending tag mismatch: name line 73 and r" in error.message
    assert (error.line, error.column) == (73, 28)


@MODES
def test_a_mismatched_tag_between_records_fails_with_its_position(tmp_path, mode):
    text = HEAD + records(80) + "  </group>\n" + records(2) + "</root>\n"
    error = failure(write(tmp_path / "g.xml", text), **mode)
    assert "Opening and ending tag mismatch" in error.message and (error.line, error.column) == (83, 11)


@MODES
def test_nested_records_are_refused_wherever_the_blocks_are_cut(tmp_path, mode):
    text = HEAD + records(90) + '  <r id="90"><name>outer</name>\n    <r id="91"/>\n  </r>\n</root>\n'
    error = failure(write(tmp_path / "n.xml", text), **mode)
    assert "nested records are not supported" in error.message and "opened at line 93" in error.message
    assert (error.line, error.column) == (94, 5)


def test_content_after_the_root_element_fails(tmp_path):
    error = failure(write(tmp_path / "x.xml", HEAD + records(2) + "</root>\n<more/>\n"))
    assert "Extra content" in error.message and (error.line, error.column) == (6, 1)


def test_errors_after_good_records_still_let_the_good_batches_through_first(tmp_path):
    text = HEAD + records(200) + '  <r id="200"><name>x</r>\n</root>\n'
    reader = read_batches(write(tmp_path / "late.xml", text), fmt="xml", options={**OPTIONS, "chunk_bytes": 1024})
    assert next(reader).num_rows > 0
    with pytest.raises(DataError):
        list(reader)

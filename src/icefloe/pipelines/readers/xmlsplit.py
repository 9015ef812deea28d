"""One XML document as a stream of blocks cut at record boundaries, with the structure around them checked.

The parent side of the XML reader. It reads the (decompressed, UTF-8) document once:

* the prolog -- everything before the first record -- is scanned for the first record start tag
  (comments, CDATA and PIs skipped); a DOCTYPE is blanked out before any parser sees it, so no DTD
  or external entity can ever be fetched, and one that declares entities is refused outright;
  header values are taken from it with a pull parser that forgets finished elements;
* then blocks of ~`chunk_bytes` are cut just before a record start tag and run (`xmlpool`);
* the skeleton -- prolog, the text between records, the tail, with each record replaced by a
  same-sized placeholder -- goes through one incremental libxml2 parse with no tree, so a truncated
  file, an unclosed root or a bad tag between records fails with its real line and column.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import pyarrow as pa
from lxml import etree

from icefloe.errors import DataError
from icefloe.pipelines.readers.xmlbuild import BlockBuilder, header_values
from icefloe.pipelines.readers.xmlfast import has_markup
from icefloe.pipelines.readers.xmlpool import Runner
from icefloe.pipelines.readers.xmlspec import XmlSpec
from icefloe.pipelines.readers.xmlwork import PARSER_OPTIONS, last_record_start

__all__ = ["read_document"]

_DECL = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.:-]*)["']""")
_DOCTYPE = re.compile(
    rb"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*"""
    rb"""(?:\[(?:[^\]"'<]|"[^"]*"|'[^']*'|<!--.*?-->|<(?:[^>"']|"[^"]*"|'[^']*')*>)*\]\s*)?>""",
    re.DOTALL,
)
_CLOSERS = {b"<!--": b"-->", b"<![CDATA[": b"]]>", b"<?": b"?>"}
_POSITION = re.compile(r", line \d+, column \d+$")


def read_document(
    stream: IO[bytes],
    name: str,
    spec: XmlSpec,
    templates: tuple[str, str, tuple[str, tuple[str, ...]] | None],
    runner: Runner,
    *,
    expected_bytes: int | None,
    progress: Callable[[int], None],
) -> Iterator[pa.RecordBatch]:
    """Batches (parent and child) of one document, in record order; `progress(records parsed)` per block."""
    source = _utf8(stream, name)
    record = spec.record.encode()
    skeleton = _Skeleton(name)
    prolog = _Prolog(spec, name, skeleton)
    carry = prolog.run(source, spec.chunk_bytes)
    if carry is None:  # no record in the whole document
        skeleton.close()
        return
    header = header_values(spec, prolog.header, name)
    runner.configure((record, prolog.wrapper(), *templates))
    group = _Group(BlockBuilder(spec, name, header))
    if spec.workers > 1 and (expected_bytes or 0) >= spec.parallel_min_bytes:
        runner.go_parallel()
    line, col, read = prolog.line, prolog.col, prolog.read  # where the next block starts
    records = 0

    def finish(result: tuple) -> Iterator[pa.RecordBatch]:
        nonlocal line, col, records
        if result[0] == "error":
            _, message, bad_line, bad_col, before = result
            yield from group.flush()
            skeleton.feed(before)  # anything wrong earlier in the document is reported first
            message = re.sub(r"\x00(\d+)\x00", lambda m: str(line + int(m.group(1))), message)
            raise DataError(message, file=name, line=line + bad_line, column=bad_col + (col if bad_line == 0 else 0))
        if result[0] == "arrow":  # values already in Arrow (the xml2arrow engine)
            _, out, n, lines, cols, newlines, tail, piece = result
            separators = None
        else:
            _, out, separators, n, lines, cols, newlines, tail, piece = result
        skeleton.feed(piece)
        if n:
            # a block whose positions are still to be worked out is held until its group is built
            held = getattr(lines, "held", 0)
            yield from group.add(out, separators, n, (line, col, lines, cols), held)
        line, col = line + newlines, tail + (col if newlines == 0 else 0)
        records += n
        progress(records)

    while carry:
        data = source.read(spec.chunk_bytes)
        read += len(data)
        markup = None
        if not data:
            block, carry, final = carry, b"", True
        else:
            buf = carry + data
            markup = has_markup(buf)  # the block, a part of buf, is scanned for it once, here (RE2)
            cut = last_record_start(buf, record, since=max(1, len(carry) - len(record) - 2), markup=markup)
            if cut is None:  # one record larger than a chunk: the block grows
                carry = buf
                continue
            block, carry, final = buf[:cut], buf[cut:], False
        if not runner.parallel and spec.workers > 1 and read >= spec.parallel_min_bytes:
            runner.go_parallel()
        runner.submit(block, final, markup)
        while runner.full:
            yield from finish(runner.next_result())
    while runner.pending:
        yield from finish(runner.next_result())
    yield from group.flush()
    skeleton.close()


class _Group:
    """Consecutive blocks' results, built together once ~`TEXT_BYTES` of text has gathered: fewer
    and larger batches, and far fewer (per-call costly) Arrow compute calls than per block."""

    TEXT_BYTES = 1 << 20

    def __init__(self, builder: BlockBuilder) -> None:
        self.builder = builder
        self.texts: list[Any] = []  # extracted text, or xml2arrow's tables (separators None)
        self.firsts: list[int] = []  # row of each block's first record
        self.places: list[tuple[int, int, list[int], list[int]]] = []
        self.separators: tuple[str, str] | None = None
        self.rows = self.size = self.held = 0

    HELD_BYTES = 8 << 20  # blocks kept for their positions (see xmlwork.Positions)

    def add(self, text: Any, separators: tuple[str, str] | None, n: int, place: tuple, held: int = 0) -> Iterator[pa.RecordBatch]:
        if separators != self.separators:
            yield from self.flush()
            self.separators = separators
        self.texts.append(text)
        self.firsts.append(self.rows)
        self.places.append(place)
        self.rows += n
        self.size += len(text) if separators is not None else sum(b.get_total_buffer_size() for b in text.values())  # (nbytes walks every array: slow)
        self.held += held
        if self.size >= self.TEXT_BYTES or self.held >= self.HELD_BYTES:
            yield from self.flush()

    def flush(self) -> Iterator[pa.RecordBatch]:
        if not self.rows:
            return
        texts, firsts, places, rows = self.texts, self.firsts, self.places, self.rows
        self.texts, self.firsts, self.places, self.rows, self.size, self.held = [], [], [], 0, 0, 0

        def record_at(row: int) -> tuple[int | None, int | None]:
            block = bisect.bisect_right(firsts, row) - 1
            line, col, lines, cols = places[block]
            local = row - firsts[block]
            return line + lines[local], cols[local] + (col if lines[local] == 0 else 0)

        if self.separators is None:
            yield from self.builder.build_tables(texts, firsts, rows, record_at)
            return
        if len(texts) == 1:
            text = texts[0]
        else:  # section by section, the blocks' texts one after the other
            mark = self.separators[1].encode()
            parts = [t.split(mark) for t in texts]
            text = mark.join(b"".join(p[i] for p in parts) for i in range(len(parts[0])))
        yield from self.builder.build(text, self.separators, rows, record_at)


def _advance(data: bytes, line: int, col: int) -> tuple[int, int]:
    """(line, characters into it) after `data`, from those before it."""
    newline = data.rfind(b"\n")
    if newline < 0:
        return line, col + len(data.decode("utf-8", "replace"))
    return line + data.count(b"\n"), len(data[newline + 1 :].decode("utf-8", "replace"))


class _Null:
    """A parser target without callbacks: libxml2 checks well-formedness and builds nothing."""

    def close(self) -> None:
        return None


class _Skeleton:
    def __init__(self, name: str) -> None:
        self.name = name
        self.parser = etree.XMLParser(target=_Null(), **PARSER_OPTIONS)

    def feed(self, data: bytes) -> None:
        if data:
            try:
                self.parser.feed(data)
            except etree.XMLSyntaxError as exc:
                raise _syntax_error(exc, self.name) from None

    def close(self) -> None:
        try:
            self.parser.close()
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc, self.name) from None


def _syntax_error(exc: etree.XMLSyntaxError, name: str) -> DataError:
    line, col = exc.position
    return DataError(f"malformed XML: {_POSITION.sub('', exc.msg or str(exc))}", file=name, line=line, column=col)


class _Prolog:
    """Reads up to the first record: checks it, feeds it to the skeleton, captures header values."""

    def __init__(self, spec: XmlSpec, name: str, skeleton: _Skeleton) -> None:
        self.spec, self.name, self.skeleton = spec, name, skeleton
        self.record = spec.record.encode()
        self.pattern = re.compile(rb"<!--|<!\[CDATA\[|<\?|<!DOCTYPE|<" + re.escape(self.record) + rb"(?=[\s/>])")
        self.keep = max(10, len(self.record) + 2)  # a token cut by the buffer's end fits in this
        self.events = etree.XMLPullParser(events=("start", "end"), **PARSER_OPTIONS)
        self.stack: list[Any] = []
        self.names: list[str] = []
        self.header: dict[str, tuple[str | None, int | None]] = {}
        self.line, self.col, self.read = 1, 0, 0

    def run(self, text: Any, chunk: int) -> bytes | None:
        """Consume the prolog; returns the rest of the buffer from the first record's start tag."""
        buf = bytearray()
        pos = 0
        while True:
            data = text.read(chunk)
            self.read += len(data)
            buf += data
            found, pos = self._scan(buf, pos, final=not data)
            if found is not None:
                self._emit(bytes(buf[:found]))
                return bytes(buf[found:])
            self._emit(bytes(buf[:pos]))
            del buf[:pos]
            pos = 0
            if not data:
                return None

    def _scan(self, buf: bytearray, pos: int, final: bool) -> tuple[int | None, int]:
        """(record start or None, how far buf is safe to emit)."""
        while True:
            match = self.pattern.search(buf, pos)
            if match is None:
                return None, len(buf) if final else max(pos, len(buf) - self.keep)
            start, token = match.start(), match.group()
            if token in _CLOSERS:
                close = buf.find(_CLOSERS[token], match.end())
                if close < 0:  # unfinished: wait for more, or let the parser report it
                    return None, len(buf) if final else start
                pos = close + len(_CLOSERS[token])
            elif token == b"<!DOCTYPE":
                doctype = _DOCTYPE.match(buf, start)
                if doctype is None:
                    if final or len(buf) - start > (1 << 20):
                        raise self._error("malformed DOCTYPE", buf, start)
                    return None, start
                entity = buf.find(b"<!ENTITY", start, doctype.end())
                if entity >= 0:
                    raise self._error("entity declarations are not allowed (DOCTYPE declares <!ENTITY)", buf, entity)
                # blanked, lines kept: no parser ever sees the DTD reference or the internal subset
                buf[start : doctype.end()] = re.sub(rb"[^\n]", b" ", bytes(buf[start : doctype.end()]))
                pos = doctype.end()
            else:
                return start, start

    def _error(self, message: str, buf: bytearray, offset: int) -> DataError:
        line, col = _advance(bytes(buf[:offset]), self.line, self.col)
        return DataError(message, file=self.name, line=line, column=col + 1)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.skeleton.feed(data)
        self.line, self.col = _advance(data, self.line, self.col)
        try:
            self.events.feed(data)
        except etree.XMLSyntaxError as exc:  # the skeleton parser normally reports first
            raise _syntax_error(exc, self.name) from None
        self._drain()

    def _drain(self) -> None:
        for event, element in self.events.read_events():
            if event == "start":
                self.stack.append(element)
                self.names.append(etree.QName(element).localname)
                self._capture(element, attributes=True)
            else:
                self._capture(element, attributes=False)
                self.stack.pop()
                self.names.pop()
                if self.stack:  # a finished element is not needed any more: memory stays flat
                    element.clear(keep_tail=False)
                    while element.getprevious() is not None:
                        del element.getparent()[0]

    def _capture(self, element: Any, attributes: bool) -> None:
        path = tuple(self.names[1:])
        for f in self.spec.header:
            if f.name in self.header or f.steps != path or (f.attr is not None) != attributes:
                continue
            if f.attr is not None:
                value = next((v for k, v in element.attrib.items() if etree.QName(k).localname == f.attr), None)
            else:
                value = "".join(element.itertext())
            if value is not None:
                self.header[f.name] = (value, element.sourceline)

    def wrapper(self) -> bytes:
        """The open tag records are parsed inside: it declares the namespaces in scope."""
        nsmap = self.stack[-1].nsmap if self.stack else {}
        return etree.tostring(etree.Element("w", nsmap=nsmap))[:-2] + b">"


def _utf8(stream: IO[bytes], name: str) -> Any:
    """The document as UTF-8 bytes: declared or BOM-marked encodings are transcoded on the fly."""
    head = stream.read(1024)
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    encoding = None
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if head.startswith(bom):
            encoding = codec
            break
    else:
        declared = _DECL.match(head)
        encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        codec_name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown XML encoding {encoding!r}", file=name, line=1) from None
    if codec_name in ("utf-8", "ascii"):
        return _Joined(head, stream)
    return _Transcoded(head, stream, codec_name, name)


class _Joined:
    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head, self.stream = head, stream

    def read(self, size: int) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head + self.stream.read(max(0, size - len(head)))
        return self.stream.read(size)


class _Transcoded:
    def __init__(self, head: bytes, stream: IO[bytes], codec: str, name: str) -> None:
        self.decoder = codecs.getincrementaldecoder(codec)()
        self.head, self.stream, self.codec, self.name = head, stream, codec, name
        self.first = True

    def read(self, size: int) -> bytes:
        while True:
            raw = self.head + self.stream.read(size)
            self.head = b""
            try:
                text = self.decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise DataError(f"invalid {self.codec} text: {exc.reason}", file=self.name) from None
            if self.first and text:
                self.first = False
                # the declaration must now say what the bytes are
                text = re.sub(r"""^(\ufeff?<\?xml[^>]*?\sencoding\s*=\s*)["'][^"']*["']""", r'\1"UTF-8"', text.lstrip("\ufeff"))
            if text or not raw:
                return text.encode("utf-8")

"""The XML reader's per-block work: find the records in a block, parse them, extract their values.

A block is a run of the document that starts at a record's start tag. `Extractor.process` finds every
record in it (skipping look-alikes inside comments, CDATA and processing instructions), parses the
records as one small document inside a wrapper element carrying the namespaces in scope, and runs
one compiled XSLT over it that writes every value as text, separated by Unicode noncharacters. That
single C-level pass replaces thousands of Python-level lookups per block. What lies between records
(the "gaps") is handed back as a skeleton so the caller can check the document's own structure.

This module imports only the standard library and lxml, because it is also the worker process
(`python -P xmlwork.py IN_FD OUT_FD`): importing icefloe there would pull in pyiceberg and cost tens
of MB per worker. Results are plain tuples (see `Extractor.process`), positions are block-local.
"""

from __future__ import annotations

import operator
import pickle
import re
import sys
import traceback
from collections.abc import Iterator
from functools import lru_cache, partial
from itertools import accumulate, pairwise
from typing import Any

from lxml import etree

__all__ = ["PARSER_OPTIONS", "Extractor", "Positions", "find_spans", "has_markup", "last_record_start", "serve"]

# Never load a DTD, never touch the network, never expand an entity; a DOCTYPE never even reaches
# libxml2 (the caller blanks it), so an undefined entity is a fatal error rather than a warning.
PARSER_OPTIONS: dict[str, Any] = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
_RECORD_PARSER = {**PARSER_OPTIONS, "remove_comments": True, "remove_pis": True, "collect_ids": False}

# constructs inside which '<record' is not a tag
_MARKUP = re.compile(rb"<[!?]")
_TAG_END = re.compile(rb"""(?:[^>"']|"[^"]*"|'[^']*')*>""")
_CLOSERS = {b"<!--": b"-->", b"<![CDATA[": b"]]>", b"<?": b"?>"}
# noncharacters U+FDD0..U+FDEF are legal XML characters, so a stylesheet can print them, yet real
# text never holds them; a block that does gets other ones (see _separators)
_RAW_NONCHAR = re.compile(rb"\xef\xb7[\x90-\xaf]")
_REF_NONCHAR = re.compile(rb"&#(?:[xX]0*[fF][dD][dDeE][0-9a-fA-F]|0*6(?:49[7-9]\d|50\d\d));")
_FIELD_MARK, _SECTION_MARK = "\x01", "\x02"  # placeholders in the stylesheet template


def has_markup(buf: bytes) -> bool:
    return _MARKUP.search(buf) is not None


def _tokens(buf: bytes, record: bytes, pos: int = 0) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) for record start tags ('start', 'empty') and end tags ('end') outside
    comments, CDATA and PIs; ('open', start, -1) when a construct is cut off by the buffer's end."""
    pattern = _token_pattern(record)
    while True:
        match = pattern.search(buf, pos)
        if match is None:
            return
        start, opener = match.start(), match.group(1)
        if opener is not None:
            close = buf.find(_CLOSERS[opener], match.end())
            if close < 0:
                yield "open", start, -1
                return
            pos = close + len(_CLOSERS[opener])
            continue
        tag = _TAG_END.match(buf, match.end())
        if tag is None:
            yield "open", start, -1
            return
        end = tag.end()
        kind = "end" if match.group(2) else ("empty" if buf[end - 2 : end - 1] == b"/" else "start")
        yield kind, start, end
        pos = end


@lru_cache(maxsize=16)
def _token_pattern(record: bytes) -> re.Pattern[bytes]:
    name = re.escape(record)
    return re.compile(rb"(<!--|<!\[CDATA\[|<\?)|(</)" + name + rb"(?=[\s>])|<" + name + rb"(?=[\s/>])")


def last_record_start(buf: bytes, record: bytes, since: int = 1, markup: bool | None = None) -> int | None:
    """The offset of the last record start tag at or after `since` (never 0), or None; `markup`:
    `has_markup(buf)` if the caller knows it."""
    if has_markup(buf) if markup is None else markup:
        last = None
        for kind, start, _ in _tokens(buf, record):
            if kind == "open":
                break
            if kind in ("start", "empty") and start >= since:
                last = start
        return last
    needle, end = b"<" + record, len(buf)
    while True:
        at = buf.rfind(needle, since, end)
        if at < 0:
            return None
        follow = buf[at + len(needle) : at + len(needle) + 1]
        if follow and follow in b" \t\r\n/>":
            return at
        end = at + len(needle) - 1


def find_spans(
    block: bytes, record: bytes, final: bool, markup: bool | None = None
) -> tuple[list[tuple[int, int]], tuple[str, int, int] | None]:
    """[(start, end)] of the records in `block`, and the first structural problem as
    ("nested" | "unclosed", offset of the problem, offset of the open record)."""
    if has_markup(block) if markup is None else markup:
        tokens = [(k, s, e) for k, s, e in _tokens(block, record) if k != "open"]
    else:
        tokens = _fast_tokens(block, record)
    spans: list[tuple[int, int]] = []
    opened = -1
    for kind, start, end in tokens:
        if kind == "end":
            if opened >= 0:
                spans.append((opened, end))
                opened = -1
            continue  # a stray end tag lies in a gap; the skeleton parse reports it
        if opened >= 0:
            return spans, ("nested", start, opened)
        if kind == "empty":
            spans.append((start, end))
        else:
            opened = start
    if opened >= 0:
        # blocks are cut before a record start, so a record open at the end of a block that is not
        # the last has another record start inside it: the same problem wherever the cut falls
        return spans, ("unclosed" if final else "nested", len(block), opened)
    return spans, None


def _fast_tokens(block: bytes, record: bytes) -> list[tuple[str, int, int]]:
    # two literal-prefix scans beat one alternation, which would stop at every '<'
    tokens: list[tuple[str, int, int]] = []
    tag_end = _TAG_END.match
    for match in _start_pattern(record).finditer(block):
        tag = tag_end(block, match.end())
        end = tag.end() if tag else match.end()
        tokens.append(("empty" if block[end - 2 : end - 1] == b"/" else "start", match.start(), end))
    tokens.extend(("end", m.start(), m.end()) for m in _end_pattern(record).finditer(block))
    tokens.sort(key=lambda t: t[1])
    return tokens


@lru_cache(maxsize=16)
def _start_pattern(record: bytes) -> re.Pattern[bytes]:
    return re.compile(b"<" + re.escape(record) + rb"(?=[\s/>])")


@lru_cache(maxsize=16)
def _end_pattern(record: bytes) -> re.Pattern[bytes]:
    return re.compile(b"</" + re.escape(record) + rb"\s*>")


def _chars(data: bytes) -> int:
    return len(data) if data.isascii() else len(data.decode("utf-8", "replace"))


class Extractor:
    """Turns blocks into extracted text (or Arrow, with `fast`: see `xmlfast.FastParser`). `config` =
    (record, wrapper open tag, plain stylesheet template, local-name stylesheet template, xml2arrow
    (configs, guards) or None); the templates use \\x01 and \\x02 for separators."""

    def __init__(self, config: tuple[bytes, bytes, str, str, Any], lazy: bool = False, fast: Any = None) -> None:
        self.record, self.wrapper, self.plain, self.local, _ = config
        self.lazy = lazy  # results stay in this process: positions may be worked out later
        # the xml2arrow engine (`xmlfast.FastParser`), given by a caller in the reading process
        # parsers and stylesheets are not shared between threads, hence one set per extractor
        self.parser = etree.XMLParser(**_RECORD_PARSER)
        self.namespaced = b"xmlns" in self.wrapper
        self.stylesheets: dict[tuple[str, str, str], etree.XSLT] = {}
        self.fast = fast if not self.namespaced else None

    def process(self, block: bytes, final: bool, markup: bool | None = None) -> tuple:
        """One block -> ("ok", text, (field separator, section separator), n, lines, cols, newlines,
        tail_chars, skeleton), ("arrow", {xml2arrow table: RecordBatch}, n, lines, ... skeleton) or
        ("error", message, line, col, skeleton before the problem).

        Positions are block-local: lines count from 0 at the block start, columns are 1-based and,
        on line 0, count from the block start; a message refers to a local line N as \\x00N\\x00.
        newlines and tail_chars (characters after the last newline) let the caller carry on.
        The skeleton is the block with each record replaced by `<r/>` and whitespace that keeps
        later lines and columns."""
        markup = has_markup(block) if markup is None else markup  # the splitter may know it
        quick = None if markup else _quick_spans(block, self.record)
        spans, problem = (quick, None) if quick is not None else find_spans(block, self.record, final, markup)
        newlines = None
        if quick is None:
            lines, cols, skeleton = _layout(block, spans)
        else:
            lines, cols, whole, newlines = _quick_layout(block, spans, self.lazy)
            skeleton = [whole]
        if problem is not None:
            kind, offset, opened = problem
            name = self.record.decode("utf-8", "replace")
            where = f"the <{name}> opened at line \x00{_position(block, opened)[0]}\x00"
            if kind == "nested":
                message = f"<{name}> inside {where}: nested records are not supported"
            else:
                message = f"malformed XML: the file ends inside {where}"
            before = _skeleton_until(block, spans, skeleton, len(spans), min(offset, opened))
            return "error", message, *_position(block, offset), before
        newline = block.rfind(b"\n")
        if newlines is None:
            newlines = block.count(b"\n")
        tail = _chars(block[newline + 1 :])
        if not spans:
            return "ok", b"", ("", ""), 0, lines, cols, newlines, tail, b"".join(skeleton)
        view = memoryview(block)  # slices of a view are not copies: join copies each record once
        document = b"".join([self.wrapper, *(view[s:e] for s, e in spans), b"</w>"])
        if self.fast is not None and not markup:
            tables = self.fast.parse(document, len(spans))
            if tables is not None:
                return "arrow", tables, len(spans), lines, cols, newlines, tail, b"".join(skeleton)
        try:
            root = etree.fromstring(document, self.parser)
        except etree.XMLSyntaxError:
            index, message, bad_line, bad_col = self._locate(block, spans, lines, cols)
            skeleton = _layout(block, spans)[2]  # record by record, to stop before the bad one
            return "error", message, bad_line, bad_col, _skeleton_until(block, spans, skeleton, index, spans[index][0])
        if len(root) != len(spans):  # cannot happen for well-formed spans; fail loudly if it does
            return "error", f"found {len(spans)} records but parsed {len(root)}", lines[0], cols[0], b""
        separators = _separators(block)
        if separators is None:
            return "error", "text uses nearly all of U+FDD0..U+FDEF, which the reader needs", lines[0], cols[0], b""
        key = (self.local if self.namespaced or b"xmlns" in block else self.plain, *separators)
        if key not in self.stylesheets:
            self.stylesheets[key] = _stylesheet(*key)
        text = bytes(self.stylesheets[key](root))
        return "ok", text, separators, len(spans), lines, cols, newlines, tail, b"".join(skeleton)

    def _locate(self, block: bytes, spans: list, lines: list[int], cols: list[int]) -> tuple[int, str, int, int]:
        """Re-parse record by record to find the first bad one, with its block-local position."""
        width = len(self.wrapper)
        for index, (start, end) in enumerate(spans):
            try:
                etree.fromstring(self.wrapper + block[start:end] + b"</w>", self.parser)
            except etree.XMLSyntaxError as exc:
                line, col = exc.position
                base = lines[index]
                message = "malformed XML: " + re.sub(r", line \d+, column \d+$", "", exc.msg or str(exc))
                # libxml2 names other lines too ("tag mismatch: a line 3 and b"): mark them for rebasing
                message = re.sub(r"\bline (\d+)\b", partial(_local_line, base), message)
                return index, message, base + line - 1, cols[index] + col - width - 1 if line == 1 else col
        return 0, "the records do not parse together (namespace declarations between records?)", lines[0], cols[0]


def _local_line(base: int, match: re.Match[str]) -> str:
    return f"line \x00{base + int(match.group(1)) - 1}\x00"


def _quick_spans(block: bytes, record: bytes) -> list[tuple[int, int]] | None:
    """The records of a block without comments, CDATA or PIs when every start tag is closed by the
    next end tag (the usual case), in two C-level passes; else None (`find_spans` does it)."""
    starts = [m.start() for m in _start_pattern(record).finditer(block)]
    ends = [m.end() for m in _end_pattern(record).finditer(block)]
    # a self-closing record makes the counts differ, unless a stray end tag evens them out: then a
    # span holds '<r/>...</r>', which no parser accepts, so the block still fails (with a position)
    if not starts or len(starts) != len(ends):
        return None
    if not all(map(operator.lt, starts, ends)) or not all(map(operator.lt, ends, starts[1:])):
        return None
    return list(zip(starts, ends, strict=True))


class Positions:
    """The (block-local) lines and columns of a block's records, worked out when first asked for:
    only a value that does not convert needs them. Used where the block stays in this process
    (in-process and thread runs); `lines` and `cols` index like the lists `_layout` returns."""

    def __init__(self, block: bytes, starts: list[int]) -> None:
        self.block, self.starts = block, starts
        self.done: tuple[list[int], list[int]] | None = None

    def get(self) -> tuple[list[int], list[int]]:
        if self.done is None:
            block, starts = self.block, self.starts
            lines = list(accumulate(block.count(b"\n", a, b) for a, b in zip([0, *starts], starts)))
            heads = [block.rfind(b"\n", 0, s) + 1 for s in starts]
            cols = [s - h + 1 if block[h:s].isascii() else _chars(block[h:s]) + 1 for s, h in zip(starts, heads)]
            self.done = (lines, cols)
        return self.done

    @property
    def lines(self) -> _Column:
        return _Column(self, 0)

    @property
    def cols(self) -> _Column:
        return _Column(self, 1)


class _Column:
    def __init__(self, positions: Positions, which: int) -> None:
        self.positions, self.which = positions, which

    def __getitem__(self, index: int) -> int:
        return self.positions.get()[self.which][index]

    def __len__(self) -> int:
        return len(self.positions.starts)

    @property
    def held(self) -> int:
        """Bytes of block this view keeps alive."""
        return len(self.positions.block)


def _quick_layout(block: bytes, spans: list[tuple[int, int]], lazy: bool = False) -> tuple[Any, Any, bytes, int]:
    """`_layout` in fewer Python steps: the same lines and columns (`Positions` views if `lazy`),
    a skeleton in which each run of records separated by whitespace only is one placeholder, and
    the block's newline count (the runs' counts plus the gaps': one pass over the block, not two)."""
    positions = Positions(block, [s for s, _ in spans])
    lines, cols = (positions.lines, positions.cols) if lazy else positions.get()
    gaps = [block[e:s] for (_, e), (s, _) in pairwise(spans)]
    ends = [i for i, gap in enumerate(gaps) if gap.translate(None, b" \t\r\n")]  # runs end there
    parts = [block[: spans[0][0]]]
    newlines = parts[0].count(b"\n")
    run = 0
    for i in [*ends, len(spans) - 1]:
        first, last = spans[run][0], spans[i][1]
        inner = block.count(b"\n", first, last)
        newlines += inner
        if inner:
            parts.append(b"<r/>" + b"\n" * inner + b" " * _chars(block[block.rfind(b"\n", first, last) + 1 : last]))
        else:
            parts.append(b"<r/>" + b" " * (_chars(block[first:last]) - 4))
        parts.append(gaps[i] if i < len(gaps) else block[last:])
        newlines += parts[-1].count(b"\n")
        run = i + 1
    return lines, cols, b"".join(parts), newlines


def _layout(block: bytes, spans: list[tuple[int, int]]) -> tuple[list[int], list[int], list[bytes]]:
    lines, cols, skeleton = [], [], []
    line = line_start = previous = 0
    for start, end in spans:
        gap = block.count(b"\n", previous, start)
        if gap:
            line += gap
            line_start = block.rfind(b"\n", previous, start) + 1
        lines.append(line)
        cols.append(_chars(block[line_start:start]) + 1)
        skeleton.append(block[previous:start])
        inner = block.count(b"\n", start, end)
        if inner:
            line += inner
            line_start = block.rfind(b"\n", start, end) + 1
            skeleton.append(b"<r/>" + b"\n" * inner + b" " * _chars(block[line_start:end]))
        else:
            skeleton.append(b"<r/>" + b" " * (_chars(block[start:end]) - 4))
        previous = end
    skeleton.append(block[previous:])
    return lines, cols, skeleton


def _skeleton_until(block: bytes, spans: list, skeleton: list[bytes], index: int, offset: int) -> bytes:
    # the gaps and placeholders before record `index`, then the gap up to the problem
    gap_start = spans[index - 1][1] if index else 0
    return b"".join(skeleton[: 2 * index]) + block[gap_start:offset]


def _position(block: bytes, offset: int) -> tuple[int, int]:
    newline = block.rfind(b"\n", 0, offset)
    return block.count(b"\n", 0, offset), _chars(block[newline + 1 : offset]) + 1


def _separators(block: bytes) -> tuple[str, str] | None:
    # (plain regex scans: ~1 ms per 4 MiB, cheaper than `in` tests for these byte pairs)
    used = {ord(m.group().decode()) for m in _RAW_NONCHAR.finditer(block)}
    for match in _REF_NONCHAR.finditer(block):
        digits = match.group()[2:-1]
        used.add(int(digits[1:], 16) if digits[:1] in b"xX" else int(digits))
    free = [chr(c) for c in range(0xFDD0, 0xFDF0) if c not in used]
    return (free[0], free[1]) if len(free) >= 2 else None


def _stylesheet(template: str, field: str, section: str) -> etree.XSLT:
    text = template.replace(_FIELD_MARK, field).replace(_SECTION_MARK, section)
    return etree.XSLT(etree.XML(text.encode("utf-8")), access_control=etree.XSLTAccessControl.DENY_ALL)


def _process_message(extractor: Extractor | None, message: tuple) -> tuple[Extractor | None, tuple | None]:
    kind = message[0]
    if kind == "config":
        return Extractor(message[1]), None
    assert extractor is not None, "block before config"
    return extractor, extractor.process(*message[1:])


def serve(in_fd: int, out_fd: int) -> None:
    """The worker loop: ('config', config) and ('block', bytes, final) in, results out,
    one at a time and in order. The parent sends from its own thread, so neither side can block
    the other on full pipes."""
    from multiprocessing.connection import Connection

    source, sink = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    extractor = None
    while True:
        try:
            message = pickle.loads(source.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            extractor, result = _process_message(extractor, message)
        except Exception:  # noqa: BLE001 - a bug, not bad data: report it to the parent and stop
            sink.send_bytes(pickle.dumps(("crash", traceback.format_exc()), protocol=5))
            return
        if result is not None:
            sink.send_bytes(pickle.dumps(result, protocol=5))


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))

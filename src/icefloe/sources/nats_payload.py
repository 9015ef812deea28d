"""What one NATS message carries, checked: NDJSON lines, one JSON document, or a CSV document.

Each message is checked on its own before it joins a batch, so a bad one is found with its
position in the message (1-based line and column) and becomes a batch of its own; the rest of
the fetch commits. `Payload.rows` is what goes into the batch file:

- ndjson / json: NDJSON lines, one per record (a JSON array is one record per element).
- csv: the message's data lines (its header line, when it has one, is `Payload.header`). A
  message is a CSV document with a header line, unless `csv_header` names the columns: then
  every line is data. Messages batch together only under the same header.

CSV is checked by Python's csv module (C) first; only a message that fails is scanned again, by
hand, to name the line and column (the csv module names neither).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BadPayload", "Payload", "explain", "explanation", "parse_payload"]


class BadPayload(Exception):
    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(f"{line}:{column}: {reason}")
        self.line, self.column, self.reason = line, column, reason


@dataclass(frozen=True)
class Payload:
    rows: bytes
    header: bytes = b""  # csv: the header line the rows go under (with its line break)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise BadPayload(line, column, f"not UTF-8 (byte 0x{data[exc.start]:02x})") from None


def _kind(value: object) -> str:
    return "null" if value is None else {list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def _ndjson(text: str) -> Payload:
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise BadPayload(number, getattr(exc, "colno", 1), f"invalid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(value, dict):
            raise BadPayload(number, len(line) - len(line.lstrip()) + 1, f"expected a JSON object, got {_kind(value)}")
        out.append(line + "\n")
    return Payload("".join(out).encode())


def _json(text: str) -> Payload:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadPayload(exc.lineno, exc.colno, f"invalid JSON ({exc.msg})") from None
    items = doc if isinstance(doc, list) else [doc]
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            where = f"element {number} of the array" if isinstance(doc, list) else "the document"
            raise BadPayload(1, 1, f"expected a JSON object, got {_kind(item)} ({where})")
    return Payload(b"".join(json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items))


def _header_line(names: list[str], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(names)
    return out.getvalue().encode()


def _csv(text: str, delimiter: str, header: list[str] | None) -> Payload:
    body = text if text.endswith("\n") or not text else text + "\n"
    try:
        rows = list(csv.reader(io.StringIO(body), delimiter=delimiter, strict=True))
    except csv.Error:
        _locate_csv(body, delimiter, None)
        raise BadPayload(1, 1, "not valid CSV") from None  # the scanner found nothing more precise
    names = header
    start = 0
    if names is None:
        if not rows or not any(rows[0]):
            raise BadPayload(1, 1, "no header line (each message is a CSV document starting with its header)")
        names, start = rows[0], 1
        if any(not n.strip() for n in names):
            raise BadPayload(1, 1, f"the header has an empty column name ({body.splitlines()[0]!r})")
        if len({n.lower() for n in names}) != len(names):
            raise BadPayload(1, 1, "the header names a column twice")
    if any(len(row) != len(names) for row in rows[start:] if row):
        _locate_csv(body, delimiter, len(names))
        reader = csv.reader(io.StringIO(body), delimiter=delimiter, strict=True)
        for number, row in enumerate(reader):
            if number >= start and row and len(row) != len(names):
                raise BadPayload(reader.line_num, 1, f"expected {len(names)} fields, got {len(row)}")
    if names is header:
        return Payload(body.encode(), _header_line(header, delimiter))
    first_break = _end_of_first_record(body, delimiter)
    return Payload(body[first_break:].encode(), body[:first_break].encode())


def _end_of_first_record(text: str, delimiter: str) -> int:
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "\n" and not quoted:
            return i + 1
    return len(text)


def _locate_csv(text: str, delimiter: str, width: int | None) -> None:
    """Scan like RFC 4180 and raise BadPayload at the first problem (the slow path)."""
    line, column = 1, 0
    field_no, record_line, quote_at = 1, 1, (0, 0)
    state = "start"  # start | plain | quoted | closed
    for ch in text:
        column += 1
        if state == "quoted":
            if ch == '"':
                state = "closed"
            elif ch == "\n":
                line, column = line + 1, 0
            continue
        if state == "closed" and ch == '"':  # "" inside quotes
            state = "quoted"
            continue
        if ch == delimiter:
            field_no += 1
            if width is not None and field_no > width:
                raise BadPayload(line, column, f"expected {width} fields, got more")
            state = "start"
        elif ch == "\n":
            if width is not None and field_no < width and not (field_no == 1 and state == "start"):
                raise BadPayload(line, column, f"expected {width} fields, got {field_no}")
            if width is None and record_line == 1:
                width = field_no  # the header line sets the width
            line, column, field_no, state, record_line = line + 1, 0, 1, "start", line + 1
        elif ch == '"' and state == "start":
            state, quote_at = "quoted", (line, column)
        elif state == "closed" and ch != "\r":
            raise BadPayload(line, column, f"{ch!r} after a closing quote")
        elif state == "start":
            state = "plain"
    if state == "quoted":
        raise BadPayload(*quote_at, "a quote opened here is never closed")


def parse_payload(data: bytes, fmt: str, *, delimiter: str = ",", header: list[str] | None = None) -> Payload:
    """The message's records, or BadPayload naming the first problem's line and column."""
    text = _text(data)
    if fmt == "json":
        return _json(text)
    if fmt == "csv":
        return _csv(text, delimiter, header)
    return _ndjson(text)


# -- a message that did not parse: its batch holds its bytes, a hidden sidecar says why ----------
def _why_path(target: Path) -> Path:
    return target.parent / f".{target.name}.why"  # hidden: the spool's listing skips it


def explain(target: Path, subject: str, seq: int, data: bytes, bad: BadPayload) -> None:
    """Before the batch file is in place (a reader must never find it without its reason)."""
    why = {"subject": subject, "seq": seq, "line": bad.line, "column": bad.column, "reason": bad.reason,
           "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    tmp = target.parent / f".{target.name}.why.tmp"
    tmp.write_text(json.dumps(why))
    os.replace(tmp, _why_path(target))


def explanation(target: Path | None) -> dict[str, Any] | None:
    """The sidecar of the batch at `target`, while the batch still holds the same bytes (one put
    right by hand and replayed reads normally)."""
    if target is None:
        return None
    try:
        why: dict[str, Any] = json.loads(_why_path(target).read_text())
        if hashlib.sha256(target.read_bytes()).hexdigest() != why["sha256"]:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return why

"""What one NATS message may carry, checked on its own: the records, or the first problem's line
and column (no NATS needed: this is the check a fetched message goes through)."""

from __future__ import annotations

import pytest

from icefloe.sources.nats_payload import BadPayload, Payload, parse_payload


def test_a_csv_message_is_a_document_with_its_header_line() -> None:
    got = parse_payload(b'n,page\n1,"a, b"\n2,"two\nlines"\n', "csv")
    assert got == Payload(rows=b'1,"a, b"\n2,"two\nlines"\n', header=b"n,page\n")


def test_a_configured_header_makes_every_line_data() -> None:
    got = parse_payload(b"1,a\n2,b", "csv", header=["n", "page"])  # no final line break: one is added
    assert got == Payload(rows=b"1,a\n2,b\n", header=b"n,page\n")


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        (b"n,page\n1,a\n2,b,c\n", (3, 4), "expected 2 fields, got more"),
        (b"n,page\n1,a\n2\n", (3, 2), "expected 2 fields, got 1"),
        (b'n,page\n1,"a\n2,b\n', (2, 3), "a quote opened here is never closed"),
        (b'n,page\n1,"a"x\n', (2, 6), "'x' after a closing quote"),
        (b"n,page\n1,\xff\n", (2, 3), "not UTF-8 (byte 0xff)"),
        (b"n,N\n1,2\n", (1, 1), "the header names a column twice"),
        (b"\n\n", (1, 1), "no header line"),
    ],
)
def test_a_bad_csv_message_names_its_line_and_column(data: bytes, where: tuple[int, int], reason: str) -> None:
    with pytest.raises(BadPayload) as bad:
        parse_payload(data, "csv")
    assert (bad.value.line, bad.value.column) == where
    assert bad.value.reason.startswith(reason)


def test_a_json_message_is_an_object_or_an_array_of_them() -> None:
    assert parse_payload(b'{"n": 1}', "json").rows == b'{"n":1}\n'
    assert parse_payload(b'[{"n": 1},\n {"n": 2}]', "json").rows == b'{"n":1}\n{"n":2}\n'


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        (b'[{"n": 1},\n {"n": 2,}]', (2, 10), "invalid JSON"),
        (b'[{"n": 1}, 3]', (1, 1), "expected a JSON object, got number (element 1 of the array)"),
        (b"null", (1, 1), "expected a JSON object, got null (the document)"),
    ],
)
def test_a_bad_json_message_names_its_line_and_column(data: bytes, where: tuple[int, int], reason: str) -> None:
    with pytest.raises(BadPayload) as bad:
        parse_payload(data, "json")
    assert ((bad.value.line, bad.value.column), bad.value.reason[: len(reason)]) == (where, reason)


def test_an_ndjson_message_names_its_bad_line() -> None:
    assert parse_payload(b'{"n": 1}\n\n{"n": 2}', "ndjson").rows == b'{"n": 1}\n{"n": 2}\n'
    with pytest.raises(BadPayload, match=r"^2:7: invalid JSON"):
        parse_payload(b'{"n": 1}\n{"n": oops}\n', "ndjson")
    with pytest.raises(BadPayload, match=r"^1:3: expected a JSON object, got array"):
        parse_payload(b"  [1]\n", "ndjson")

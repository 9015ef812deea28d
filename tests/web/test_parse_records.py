"""`parse_records`' NDJSON check: the fast path (C iterators) accepts exactly what the line by
line check accepts, and anything else still gets the line-by-line error naming its line."""

from __future__ import annotations

import pytest

from icefloe.errors import DataError
from icefloe.web import ingest
from icefloe.web.ingest import _check_fast, _check_joined, _check_lines, parse_records

BODIES = [
    '{"a": 1}\n{"b": 2}\n',
    '{"a": 1}\r\n\r\n  {"b": "x\\ny"}\t\r\n\n',  # CRLF, blank lines, an escaped newline
    '{"a": 1}',  # no final newline
    '{"a": 1}\n{"a": 1}{"b": 2}\n',  # two values on a line
    '{"a": 1},{"b": 2}\n{"c": [1,\n2]}\n',  # two on a line and one over two: the same count
    '{"a":\n1}\n',
    '{"a": 1}\n[1]\n',
    '{"a": 1}\n"x"\n',
    '{"a": 1}\nnul\n',  # no value at all (the scanner's StopIteration)
    "\n\n",
    '{"a": 1,}\n',
    '{"a": 1} x\n',
    # what the whole-body check must not take for one record a line
    '{"a": 1}{"b": 2}\n{"c": 3}',  # two on the first line, the count off by one
    '{"a":[[1\n2]]}],[{}\n',  # one over two lines, two on the second: as many values as lines
    '{"a": 1}\r{"b": 2}\n',  # a lone CR is JSON whitespace, not a line end
    '{"a": 1}\n{"b": 2}\n\n',  # a blank last line
    '{"a": 1}\n {"b": 2}\n',  # an indented line
    '{"a": "\\x"}\n{"b": 2}\n',  # a bad escape
    '{"a": 01}\n',
    '{"a": [1,,2]}\n',
    '{"a": {"b": }}\n',
    '{"a": 1}\r\n{"b": [1, {"c": null}]}\r\n',
    '{}',
    '{"a": 1}\n{"a": "\u00e9\\u00e9"}\n',
]


@pytest.mark.parametrize("text", BODIES)
def test_the_fast_check_accepts_only_what_the_line_by_line_one_does(text: str) -> None:
    lines = text.split("\n")
    try:
        expected: int | None = _check_lines(lines, "body")
    except DataError:
        expected = None
    assert _check_fast(lines) == expected


@pytest.mark.parametrize("text", BODIES)
def test_the_whole_body_check_accepts_only_what_the_line_by_line_one_does(text: str) -> None:
    try:
        expected: int | None = _check_lines(text.split("\n"), "body")
    except DataError:
        expected = None
    found = _check_joined(text.encode())
    assert found is None or found == expected


def test_a_body_of_one_object_a_line_takes_one_decode_not_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # the per-line checks cost 3-4x the whole-body one on bench 12's 1,000-row posts
    def per_line(*_: object) -> None:
        raise AssertionError("the per-line check ran")

    monkeypatch.setattr(ingest, "_check_fast", per_line)
    monkeypatch.setattr(ingest, "_check_lines", per_line)
    body = b"".join(b'{"id": %d, "page": "/p\\u00e9", "tags": [1, {"x": null}]}\n' % i for i in range(1000))
    assert parse_records(body, "application/x-ndjson").rows == 1000
    assert parse_records(body.replace(b"\n", b"\r\n"), "").rows == 1000


@pytest.mark.parametrize("text", ['{"a": NaN}\n', '{"a": "\\ud800"}\n'])
def test_what_only_the_json_module_takes_is_left_to_it(text: str) -> None:
    # msgspec refuses these; the json module (the check before msgspec) takes them: still 202
    assert _check_fast(text.split("\n")) is None
    assert parse_records(text.encode(), "").rows == 1


def test_a_bad_line_after_many_good_ones_is_named() -> None:
    body = b'{"id": 1}\n' * 999 + b'{"id": 2,}\n'
    with pytest.raises(DataError, match="body:1000:"):
        parse_records(body, "application/x-ndjson")
    assert parse_records(b'{"id": 1}\n' * 1000, "application/x-ndjson").rows == 1000

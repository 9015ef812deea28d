"""`parse_records`' NDJSON check: the fast path (C iterators) accepts exactly what the line by
line check accepts, and anything else still gets the line-by-line error naming its line."""

from __future__ import annotations

import pytest

from icefloe.errors import DataError
from icefloe.web.ingest import _check_fast, _check_lines, parse_records

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
]


@pytest.mark.parametrize("text", BODIES)
def test_the_fast_check_accepts_only_what_the_line_by_line_one_does(text: str) -> None:
    lines = text.split("\n")
    try:
        expected: int | None = _check_lines(lines, "body")
    except DataError:
        expected = None
    assert _check_fast(lines) == expected


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

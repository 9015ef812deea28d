"""An NDJSON line that is not an object is an error naming its line, never a row of nulls (and
never pyarrow's crash on a `null` first line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from icefloe import Project
from tests.helpers import make_project

NDJSON = {"read": {"format": "ndjson", "schema": {"a": "long"}}, "write": {"table": "t.rows"}}


@pytest.mark.parametrize(
    "body, line, starts",
    [
        pytest.param(b"null\n", 1, "null", id="null-first-line"),
        (b'{"a": 1}\nnull\n{"a": 3}\n', 2, "null"),
        (b'{"a": 1}\n\n   [1, 2]\n', 3, "array"),
        (b'{"a": 1}\r\n"text"\r\n', 2, "string"),
        (b'  \n{"a": 1}\n42\n', 3, "number"),
    ],
)
def test_a_line_that_is_not_an_object_dies_with_its_line(tmp_path: Path, body: bytes, line: int, starts: str) -> None:
    root = make_project(tmp_path / "p", {"rows": NDJSON})
    (root / "landing" / "x.ndjson").write_bytes(body)
    if body.startswith(b"null"):
        # in a child process: the old reader took the whole interpreter down on a `null` first
        # line (the other cases read in this process: a child's start-up costs seconds)
        code = (
            "import sys; from icefloe import Project\n"
            "with Project(sys.argv[1]) as p:\n"
            "    s = p.run(once=True)\n"
            "    print(s.dead, p.dead_letters()[0].error if s.dead else '')\n"
        )
        done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        dead, _, error = done.stdout.strip().partition(" ")
    else:
        with Project(root) as p:
            dead, error = str(p.run(once=True).dead), p.dead_letters()[0].error or ""
    assert dead == "1"
    assert f"x.ndjson:{line}:" in error and f"expected a JSON object, got {starts}" in error


def test_objects_with_blank_lines_and_a_large_file_still_read(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"rows": NDJSON})
    body = b"".join(b'{"a": %d}\n' % i + (b"\n" if i % 7 == 0 else b"") + (b"   " if i % 5 == 0 else b"") for i in range(200_000))
    (root / "landing" / "big.ndjson").write_bytes(body)
    with Project(root) as project:
        assert project.run(once=True).dead == 0
        assert project.sql("select count(*) as n, sum(a) as s from t.rows").to_pylist() == [{"n": 200_000, "s": sum(range(200_000))}]

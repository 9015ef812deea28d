"""Run the CLI in-process, the way a shell would: exit code, stdout, stderr."""

from __future__ import annotations

import pytest

from icefloe.cli import main


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err

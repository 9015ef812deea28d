"""The worker's start-up heap leaves the cyclic collector's sight after its first commit
(`engine.heap`): a full collection that walked it landed in one file's commit time (bench 8)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import ORDERS, make_project

# in a fresh interpreter: the frozen generation is per process and pytest's own would not tell
SCRIPT = textwrap.dedent(
    """
    import gc, sys
    from pathlib import Path
    from icefloe import Project

    calls = []
    freeze = gc.freeze
    gc.freeze = lambda: (calls.append(1), freeze())[1]

    root = Path(sys.argv[1])
    with Project(root) as project:
        before = gc.get_freeze_count()
        first = root.parent / "a.csv"
        first.write_text("id,ts,amount\\n1,2026-01-01T00:00:00,1.25\\n")
        assert [e.state for e in project.ingest([first])] == ["committed"]
        after_first = gc.get_freeze_count()
        second = root.parent / "b.csv"
        second.write_text("id,ts,amount\\n2,2026-01-01T00:00:00,2.25\\n")
        assert [e.state for e in project.ingest([second])] == ["committed"]
        print(before, after_first, len(calls), gc.isenabled())
    """
)


def test_the_heap_is_frozen_once_after_the_first_commit(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    before, after_first, freezes, enabled = out.stdout.split()
    assert int(before) == 0
    assert int(after_first) > 10_000  # the imports, the catalog and the table: out of the collector's walks
    assert int(freezes) == 1  # once: what the worker makes later stays collectable
    assert enabled == "True"  # the collector still runs, for what the worker makes from then on

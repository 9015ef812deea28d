"""The dependency rule from CONTRIBUTING.md, checked on the source: imports only flow leftwards."""

from __future__ import annotations

import ast
from pathlib import Path

import icefloe

ROOT = Path(icefloe.__file__).parent
# rank of each layer; a module may import from its own rank or lower ranks only
LAYERS = {
    "errors": 0, "types": 0, "config": 1, "sources": 2, "routing": 3, "ledger": 4,
    "pipelines": 5, "lake": 6, "runtime": 7, "query": 8, "engine": 9, "observe": 9, "scaffold": 9, "upkeep": 9,
    "project": 10, "demo": 11, "cli": 11, "web": 11, "__init__": 11, "__main__": 12,
}  # fmt: skip


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_imports_only_flow_towards_the_core() -> None:
    violations = []
    for file in ROOT.rglob("*.py"):
        rel = file.relative_to(ROOT.parent).with_suffix("")
        mine = _layer(".".join(rel.parts))
        tree = ast.parse(file.read_text())
        # imports for annotations only (under `if TYPE_CHECKING:`) count too: a type that names a
        # higher layer is the same cycle, only hidden until someone needs it at runtime
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("icefloe"):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("icefloe")]
            for name in names:
                theirs = _layer(name)
                if name != "icefloe" and LAYERS[theirs] > LAYERS[mine]:
                    violations.append(f"{rel}: imports {name}")
    assert violations == []

"""Where each config value came from (a line of icefloe.yaml, an `ICEFLOE__` variable, a `--set`
flag), and problems reported at those places."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from icefloe.errors import ConfigError

__all__ = ["ConfigProblems", "Origins", "Problem", "flag_label", "line_index", "report"]

Problem = tuple[tuple[Any, ...], str]
"""(location in the config, message)."""


class ConfigProblems(ConfigError):
    """Problems that each belong at their own place in the config (load_config adds the lines)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{dotted(loc)}: {message}" for loc, message in problems))
        self.problems = problems


def dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


def report(problems: list[Problem], where: Callable[..., str]) -> str:
    return "invalid configuration:\n  " + "\n  ".join(f"{where(*loc)}: {dotted(loc)}: {msg}" for loc, msg in problems)


class Origins:
    """Where each config value came from. A value replaced by an overlay (environments.<name>,
    an ICEFLOE__ variable, a --set flag) is blamed on the overlay, not on the file line it replaced."""

    def __init__(self, file: Path, lines: dict[tuple[Any, ...], int]) -> None:
        self.file = file
        self.marks: dict[tuple[Any, ...], str] = {path: f"{file}:{line}" for path, line in lines.items()}

    def describe(self, loc: tuple[Any, ...]) -> str:
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.marks:
                return self.marks[loc[:n]]
        return f"{self.file}:?"

    def replace(self, path: tuple[Any, ...], label: str) -> None:
        for stale in [p for p in self.marks if p[: len(path)] == path]:
            del self.marks[stale]
        self.marks[path] = label

    def overlay(self, base: Any, overlay: dict[str, Any], label: Callable[[tuple[Any, ...], Any], str], prefix: tuple[Any, ...] = ()) -> None:
        """Record what `_deep_merge(base, overlay)` is about to change."""
        for key, value in overlay.items():
            path = prefix + (key,)
            below = base.get(key) if isinstance(base, dict) else None
            if isinstance(value, dict) and isinstance(below, dict):
                self.marks.setdefault(path, label(path, value))
            else:
                self.replace(path, label(path, value))
            if isinstance(value, dict):  # each key below is blamed on its own entry
                self.overlay(below if isinstance(below, dict) else {}, value, label, path)


def flag_label(path: tuple[Any, ...], value: Any) -> str:
    dotted = ".".join(str(p) for p in path)
    if isinstance(value, (dict, list)):
        return f"--set {dotted}=..."
    return f"--set {dotted}={value if isinstance(value, str) else json.dumps(value)}"


def line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every key path in the YAML document to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[path + (key.value,)] = key.start_mark.line + 1
            lines.update({p: ln for p, ln in line_index(value, path + (key.value,)).items() if p != path + (key.value,)})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(line_index(item, path + (index,)))
    return lines

"""Reading icefloe.yaml: the file, then `ICEFLOE__SECTION__KEY` env vars, then flags.

Validation errors name the file and line of the offending value, because the YAML is parsed into
a node tree first and every pydantic error location is mapped back to the node it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from icefloe.config.models import CONFIG_FILE, ProjectConfig
from icefloe.config.origins import ConfigProblems, Origins, flag_label, line_index, report
from icefloe.errors import ConfigError

__all__ = ["load_config"]


def _env_overrides(data: dict[str, Any], environ: dict[str, str], origins: Origins | None = None) -> None:
    """ICEFLOE__CATALOG=..., ICEFLOE__PIPELINES__ORDERS__BATCH__MAX_ROWS=... (YAML-typed values)."""
    for name, raw in sorted(environ.items()):
        if not name.startswith("ICEFLOE__"):
            continue
        keys = [part.lower() for part in name[len("ICEFLOE__") :].split("__") if part]
        target = data
        for n, key in enumerate(keys[:-1], 1):
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: {key} is not a section")
            if origins is not None:
                origins.marks.setdefault(tuple(keys[:n]), name)
        target[keys[-1]] = yaml.safe_load(raw) if raw else raw
        if origins is not None:
            origins.replace(tuple(keys), name)


_NAMED = {"pipelines": "pipeline", "sources": "source"}


def _unnamed(loc: tuple[Any, ...], message: str, named: dict[str, list[str]]) -> str:
    """An override naming a pipeline or source the file lacks (a typo, most likely) makes a new,
    incomplete one: say so, rather than only which of its fields are missing."""
    if len(loc) < 2 or loc[0] not in _NAMED or loc[1] in named.get(loc[0], [loc[1]]):
        return message
    known = ", ".join(named[loc[0]]) or "none"
    return f"{message} (there is no {_NAMED[loc[0]]} {loc[1]!r} in {CONFIG_FILE}; it has: {known})"


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | os.PathLike[str],
    *,
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> ProjectConfig:
    """Read and validate a project's icefloe.yaml (path may be the file or its folder)."""
    file = Path(path)
    if file.is_dir():
        file = file / CONFIG_FILE
    if not file.exists():
        raise ConfigError(f"{file}: not found (create one with `icefloe init`)")
    text = file.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: the top level must be a mapping")
    lines = line_index(node) if node is not None else {}
    origins = Origins(file, lines)
    if env is not None:
        if env not in data.get("environments", {}):
            raise ConfigError(f"{file}: no environment {env!r} under environments:")
        overlay = data["environments"][env]
        here = origins.describe(("environments", env))
        origins.overlay(data, overlay, lambda path, _v: origins.marks.get(("environments", env, *path), here))
        data = _deep_merge(data, overlay)
    named = {section: sorted(data.get(section) or {}) for section in _NAMED if isinstance(data.get(section), dict)}
    _env_overrides(data, dict(os.environ if environ is None else environ), origins)
    if overrides:
        origins.overlay(data, overrides, flag_label)
        data = _deep_merge(data, overrides)
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        locs = [_untagged(tuple(error["loc"])) for error in exc.errors()]
        problems = [(loc, _unnamed(loc, error["msg"], named)) for loc, error in zip(locs, exc.errors())]
        raise ConfigError(report(problems, lambda *loc: origins.describe(loc))) from None
    except ConfigProblems as exc:
        raise ConfigError(report(exc.problems, lambda *loc: origins.describe(loc))) from None
    config._bind(origins)
    return config


def _untagged(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the source type picked (`s3`) into the location; the file has no such key."""
    if len(loc) > 2 and loc[0] == "sources" and loc[2] in ("folder", "s3"):
        return loc[:2] + loc[3:]
    return loc

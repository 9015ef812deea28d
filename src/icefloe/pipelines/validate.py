"""What a pipeline's config promises that can be checked before any file arrives.

Project load runs these, so a mistake is one ConfigError at its `icefloe.yaml:LINE` (exit 2)
instead of a dead event per file. What only the data can tell (a column that is inferred, or
made by a transform) is checked by the runner, whose message names the config line too.
"""

from __future__ import annotations

from typing import Any

from icefloe.config import PipelineConfig, ProjectConfig
from icefloe.config.origins import Problem
from icefloe.errors import ConfigError
from icefloe.pipelines.checks import check_columns, validate_checks
from icefloe.pipelines.formats import BUILTIN
from icefloe.types import partition_parts

__all__ = ["config_problems", "pipeline_problems", "shared_table_problems"]


def config_problems(config: ProjectConfig) -> list[Problem]:
    problems = [p for name, pipeline in config.pipelines.items() for p in pipeline_problems(name, pipeline)]
    return problems + shared_table_problems(config.pipelines)


def pipeline_problems(name: str, cfg: PipelineConfig) -> list[Problem]:
    at = ("pipelines", name)
    problems: list[Problem] = [(at + loc, message) for loc, message in _read_problems(cfg)]
    checks_ok = True
    for i, check in enumerate(cfg.checks):
        try:
            validate_checks([check])
        except ConfigError as exc:
            problems.append((at + ("checks", i), exc.message))
            checks_ok = False
    declared = cfg.declared_columns()
    if declared is None:
        return problems
    where = "read.fields or read.header" if cfg.read.format == "xml" else "read.schema"

    def lacks(loc: tuple[Any, ...], what: str, column: str) -> None:
        if column not in declared:
            problems.append((at + loc, f"{what} names column {column!r}, which {where} does not declare"))

    for j, column in enumerate(cfg.write.key):
        lacks(("write", "key", j), "write.key", column)
    for j, column in enumerate(cfg.dedupe.key if cfg.dedupe else []):
        lacks(("dedupe", "key", j), "dedupe.key", column)
    for j, spec in enumerate(cfg.write.partition):
        lacks(("write", "partition", j), f"partition {spec!r}", partition_parts(spec)[0])
    for i, check in enumerate(cfg.checks if checks_ok else []):
        kind, columns = check_columns(check)
        for column in columns:
            lacks(("checks", i), f"check {kind}", column)
    return problems


def _read_problems(cfg: PipelineConfig) -> list[Problem]:
    fmt = cfg.read.format
    if fmt is None:  # told by each file's name; its reader checks the options then
        return []
    allowed: tuple[str, ...] | None
    if fmt in BUILTIN:  # known without importing its reader (pyarrow, lxml)
        allowed, check = BUILTIN[fmt]
    else:  # one added with register_reader, or none
        from icefloe.pipelines.readers import READERS, option_check, option_names

        if fmt not in READERS:
            return [(("read", "format"), f"unknown format {fmt!r}; known: {', '.join(sorted(READERS))}")]
        allowed, check = option_names(fmt), option_check(fmt)
    unknown = [key for key in cfg.read.options if allowed is not None and key not in allowed]
    if unknown:
        known = ", ".join(allowed or ()) or "none"
        return [(("read", "options", key), f"unknown {fmt} read option {key!r}; known: {known}") for key in unknown]
    try:
        if check is not None:
            check(cfg.read.reader_options())
    except ConfigError as exc:
        return [(("read",), exc.message)]
    return []


def shared_table_problems(pipelines: dict[str, PipelineConfig]) -> list[Problem]:
    """Pipelines sharing a table each keep their own mode; what one table cannot hold for two of
    them (two upsert keys, two partition specs, rows an upsert could never match) is refused."""
    problems: list[Problem] = []
    by_table: dict[str, list[str]] = {}
    for name, pipeline in pipelines.items():
        by_table.setdefault(pipeline.write.table, []).append(name)
    for table, names in by_table.items():
        upserts = [n for n in names if pipelines[n].write.mode == "upsert"]
        if upserts:
            first, key = upserts[0], pipelines[upserts[0]].write.key
            for name in upserts[1:]:
                if pipelines[name].write.key != key:
                    other = pipelines[name].write.key
                    message = f"{table} is upserted by key {key} in pipeline {first} but by {other} here; one table has one key"
                    problems.append((("pipelines", name, "write", "key"), message))
            for name in names:
                declared = pipelines[name].declared_columns()
                lacking = [k for k in key if declared is not None and k not in declared]
                if name not in upserts and lacking:
                    message = (
                        f"this pipeline writes {table}, which pipeline {first} upserts by key {key}, but its rows "
                        f"have no {lacking[0]!r} column (the upsert could never match them); declare it"
                    )
                    problems.append((("pipelines", name, "read", "schema"), message))
        partitioned = [n for n in names if pipelines[n].write.partition]
        for name in partitioned[1:]:
            first, spec = partitioned[0], pipelines[partitioned[0]].write.partition
            if pipelines[name].write.partition != spec:
                message = (
                    f"{table} is partitioned by {spec} in pipeline {first} but by {pipelines[name].write.partition} "
                    "here; one table has one partition spec"
                )
                problems.append((("pipelines", name, "write", "partition"), message))
    return problems

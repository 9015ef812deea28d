"""The typed models of icefloe.yaml (pydantic): every key, its default and what is checked at load."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from icefloe.config.origins import ConfigProblems, Origins, Problem, report
from icefloe.config.nats import NatsSourceConfig
from icefloe.config.serve import ServeConfig
from icefloe.config.telemetry import TelemetryConfig
from icefloe.config.s3 import S3Settings, S3SourceConfig
from icefloe.errors import ConfigError
from icefloe.types import arrow_type, check_partition, check_type

__all__ = [
    "CONFIG_FILE",
    "BatchConfig",
    "MaintenanceConfig",
    "PipelineConfig",
    "ProjectConfig",
    "ReadConfig",
    "RetryConfig",
    "RouteConfig",
    "SourceConfig",
    "WriteConfig",
    "parse_duration",
    "parse_size",
]

CONFIG_FILE = "icefloe.yaml"
WriteMode = Literal["append", "upsert", "replace_source", "overwrite"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> float:
    """`500ms`, `2s`, `1.5m`, `1h` or a bare number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 2s, 1m)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """`64MB`, `1.5GiB`, `512kb` or a bare number of bytes -> bytes (KB = KiB = 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 64MB, 1GB)")
    unit = (match.group(2) or "b").lower()[0]
    return int(float(match.group(1)) * 1024 ** "bkmgt".index(unit))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Model):
    type: Literal["folder", "nats"] = "folder"
    # folder: the folder watched; nats: where message batches are kept (default .icefloe/spool/NAME)
    path: str | None = None
    # a file counts as complete once its writer closed it or renamed it into place, or (seen only
    # by a scan or a modify notice) once it stayed unchanged this long: seconds, as writers pause
    settle: float = 2.0
    ignore: list[str] = Field(default_factory=lambda: ["*.part", "*.tmp", ".*", "*~"])
    # a running worker lists the whole source this often, for objects no watch notice reported
    # (landed while nothing ran, or missed); between passes landing never lists the source
    reconcile: float = Field(default=300.0, gt=0)

    # type: nats
    nats: NatsSourceConfig | None = None

    _d = field_validator("settle", "reconcile", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _type_needs(self) -> SourceConfig:
        if self.type == "folder" and self.path is None:
            raise ValueError("a folder source needs `path`")
        if self.type == "nats" and self.nats is None:
            raise ValueError("a nats source needs a `nats:` section (at least `stream`)")
        if self.type != "nats" and self.nats is not None:
            raise ValueError(f"`nats:` is for type: nats sources, not {self.type}")
        return self


def _source_type(value: Any) -> str:
    kind = value.get("type", "folder") if isinstance(value, dict) else getattr(value, "type", "folder")
    return "s3" if kind == "s3" else "folder"  # folder and nats share SourceConfig (it checks the type)


# `type` picks the model; a source without one is a folder
AnySource = Annotated[
    Annotated[SourceConfig, Tag("folder")] | Annotated[S3SourceConfig, Tag("s3")], Discriminator(_source_type)
]


class RouteConfig(_Model):
    source: str
    match: str = "**"
    pipeline: list[str]

    @field_validator("pipeline", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ReadConfig(_Model):
    format: str | None = None
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    options: dict[str, Any] = Field(default_factory=dict)
    batch_rows: int = Field(default=65536, gt=0)
    # a declared column missing from a file is an error unless this says to read it as NULL
    nullable_missing: bool = False
    # format: xml takes its record spec at this level (the reader validates the contents)
    record: str | None = None
    fields: dict[str, Any] | None = None
    header: dict[str, Any] | None = None
    children: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _xml_keys(self) -> ReadConfig:
        used = [k for k in _XML_KEYS if getattr(self, k) is not None]
        if used and self.format != "xml":
            raise ValueError(f"{', '.join(used)} only apply to format: xml")
        if self.format == "xml" and self.record is None and "record" not in self.options:
            raise ValueError("format xml needs record: <element name of one record>")
        return self

    def reader_options(self) -> dict[str, Any]:
        """The options the reader gets: `options` plus the XML record spec."""
        extra = {k: getattr(self, k) for k in _XML_KEYS if getattr(self, k) is not None}
        return {**self.options, **extra}

    def child_names(self) -> list[str]:
        return list(self.reader_options().get("children") or {})

    @field_validator("schema_")
    @classmethod
    def _types_exist(cls, value: dict[str, str]) -> dict[str, str]:
        for column, name in value.items():
            try:
                check_type(str(name))
            except ConfigError as exc:
                raise ValueError(f"column {column}: {exc.message}") from None
        return value

    def arrow_schema(self) -> dict[str, Any]:
        return {column: arrow_type(name) for column, name in self.schema_.items()}


_XML_KEYS = ("record", "fields", "header", "children")


class DedupeConfig(_Model):
    # rows of one file with the same key: keep the first or last
    key: list[str] = Field(default_factory=list)
    keep: Literal["first", "last"] = "last"
    # a file whose bytes another object of this pipeline already brought is not loaded again
    content: bool = False

    @model_validator(mode="after")
    def _something(self) -> DedupeConfig:
        if not self.key and not self.content:
            raise ValueError("dedupe needs key: [column, ...] or content: true")
        return self


class WriteConfig(_Model):
    table: str
    mode: WriteMode = "append"
    key: list[str] = Field(default_factory=list)
    partition: list[str] = Field(default_factory=list)
    # child name (from read.children) -> table; written with the parent, in the same mode
    children: dict[str, str] = Field(default_factory=dict)
    # add_columns: a file's new columns join the table; strict: a column the table lacks is refused
    schema_evolution: Literal["add_columns", "strict"] = "add_columns"

    @field_validator("table")
    @classmethod
    def _qualified(cls, value: str) -> str:
        return _table_name(value)

    @field_validator("children")
    @classmethod
    def _child_tables(cls, value: dict[str, str]) -> dict[str, str]:
        return {child: _table_name(table) for child, table in value.items()}

    @field_validator("partition")
    @classmethod
    def _partition_specs(cls, specs: list[str]) -> list[str]:
        for spec in specs:
            try:
                check_partition(spec)
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        return specs

    @model_validator(mode="after")
    def _key_for_upsert(self) -> WriteConfig:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode upsert needs key: [column, ...]")
        if self.children and self.mode == "upsert":
            # an upsert would have to delete the old child rows of every updated key first
            raise ValueError("child tables can be written in append, replace_source or overwrite mode, not upsert")
        return self


def _table_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", value):
        raise ValueError("table must be namespace.name, e.g. sales.orders")
    return value


class BatchConfig(_Model):
    max_wait: float = 0.5
    max_rows: int = Field(default=1_000_000, gt=0)
    max_bytes: int = Field(default=256 << 20, gt=0)
    # an event holding more than this in memory writes its rows to the lake ahead of the commit
    spill_bytes: int = Field(default=32 << 20, gt=0)
    # data files a spilled event writes at once, each on its own thread (pyarrow encodes one
    # Parquet file on one core): for wide rows whose encoding is slower than parsing them
    spill_writers: int = Field(default=1, ge=1, le=16)

    _d = field_validator("max_wait", mode="before")(lambda v: parse_duration(v))
    _s = field_validator("max_bytes", "spill_bytes", mode="before")(lambda v: parse_size(v))


class RetryConfig(_Model):
    max_attempts: int = Field(default=5, ge=1)
    backoff: float = 1.0
    max_backoff: float = 300.0

    _d = field_validator("backoff", "max_backoff", mode="before")(lambda v: parse_duration(v))


class PipelineConfig(_Model):
    read: ReadConfig = Field(default_factory=ReadConfig)
    transform: list[dict[str, Any]] = Field(default_factory=list)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    dedupe: DedupeConfig | None = None
    write: WriteConfig
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # set by load_config: where each value came from, and this pipeline's place in the config
    _origins: Origins | None = PrivateAttr(default=None)
    _at: tuple[Any, ...] = PrivateAttr(default=())

    def where(self, *loc: Any) -> str:
        """`icefloe.yaml:LINE` (or the env var / --set flag) of the value at `loc` in this pipeline."""
        return self._origins.describe(self._at + loc) if self._origins is not None else ".".join(map(str, loc))

    def declared_columns(self) -> set[str] | None:
        """The columns every row is known to have before a file is read, or None when only the data
        can tell (no schema declared, or a transform reshapes the rows)."""
        if self.transform:
            return None
        if self.read.format == "xml":
            return {*(self.read.fields or {}), *(self.read.header or {}), *self.read.schema_}
        return set(self.read.schema_) or None

    @model_validator(mode="after")
    def _children_have_tables(self) -> PipelineConfig:
        declared, tables = self.read.child_names(), self.write.children
        if missing := [c for c in declared if c not in tables]:
            raise ValueError(f"read.children {missing[0]!r} needs a table under write.children")
        if unknown := [c for c in tables if c not in declared]:
            raise ValueError(f"write.children {unknown[0]!r} is not declared under read.children")
        if self.write.table in tables.values():
            raise ValueError("a child table must differ from the pipeline's table")
        return self

    @field_validator("transform")
    @classmethod
    def _transform_kinds(cls, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for step in steps:
            if len(step) != 1 or next(iter(step)) not in ("sql", "python"):
                raise ValueError("each transform is {sql: '...'} or {python: 'module:function'}")
        return steps


class MaintenanceConfig(_Model):
    """Table maintenance the workers run after commits (`icefloe maintain` runs it by hand)."""

    enabled: bool = True
    # runs in a child process of the worker (its own catalog and ledger connections, a lower CPU
    # priority), so they never hold the committer's GIL; false: on a thread of the worker
    process: bool = True
    keep_snapshots: int | None = Field(default=None, ge=1)
    keep_for: float | None = None
    target_file_bytes: int | None = Field(default=None, gt=0)
    small_file_bytes: int | None = Field(default=None, gt=0)
    compact_min_files: int | None = Field(default=None, ge=2)
    sort_by: list[str] | None = None
    max_manifests: int | None = Field(default=None, ge=1)
    orphan_min_age: float | None = None
    every_commits: int | None = Field(default=None, ge=1)
    small_files: int | None = Field(default=None, ge=1)
    every: float | None = None
    # per-table overrides of any of the keys above
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _d = field_validator("keep_for", "orphan_min_age", "every", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )
    _s = field_validator("target_file_bytes", "small_file_bytes", mode="before")(
        lambda v: None if v is None else parse_size(v)
    )

    @field_validator("tables")
    @classmethod
    def _table_overrides(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for table, override in value.items():
            _table_name(table)
            if "tables" in override:
                raise ValueError(f"tables.{table}: overrides cannot nest tables")
            if "process" in override:  # one maintenance process per worker, for all its tables
                raise ValueError(f"tables.{table}: process is set for all tables, not per table")
            MaintenanceConfig.model_validate(override)
        return value

    def settings(self, table: str | None = None) -> dict[str, Any]:
        """The policy keys that are set, table overrides applied (unset keys keep the lake's defaults)."""
        merged = self.model_dump(exclude={"tables", "enabled", "process"}, exclude_none=True)
        if table is not None and table in self.tables:
            override = MaintenanceConfig.model_validate(self.tables[table])
            merged.update(override.model_dump(exclude={"tables", "enabled", "process"}, exclude_none=True))
        if "sort_by" in merged:
            merged["sort_by"] = tuple(merged["sort_by"])
        return merged

    def enabled_for(self, table: str) -> bool:
        override = self.tables.get(table, {})
        return bool(override.get("enabled", self.enabled))


class ProjectConfig(_Model):
    catalog: str = "sqlite:///catalog.db"
    warehouse: str = "warehouse/"
    ledger: str = "sqlite:///.icefloe/ledger.db"
    lease: float = 60.0
    sources: dict[str, AnySource] = Field(default_factory=dict)
    # defaults for every `type: s3` source and for an s3:// warehouse (config/s3.py)
    s3: S3Settings = Field(default_factory=S3Settings)
    routes: list[RouteConfig] = Field(default_factory=list)
    pipelines: dict[str, PipelineConfig] = Field(default_factory=dict)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _d = field_validator("lease", mode="before")(lambda v: parse_duration(v))

    # set by load_config: where each value came from
    _origins: Origins | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references_exist(self) -> ProjectConfig:
        # raised as ConfigProblems, not ValueError: pydantic would blame a model validator's
        # error on the top of the file, and each problem has a place of its own
        problems = self.cross_problems()
        if problems:
            raise ConfigProblems(problems)
        return self

    def cross_problems(self) -> list[Problem]:
        """What no single section can check: references between sections."""
        problems: list[Problem] = []
        for i, route in enumerate(self.routes):
            if route.source not in self.sources:
                problems.append((("routes", i, "source"), f"route names unknown source {route.source!r}"))
            for j, name in enumerate(route.pipeline):
                if name not in self.pipelines:
                    problems.append((("routes", i, "pipeline", j), f"route names unknown pipeline {name!r}"))
        owners: dict[str, str] = {}
        for name, pipeline in self.pipelines.items():
            for table in pipeline.write.children.values():
                if owners.setdefault(table, name) != name or any(p.write.table == table for p in self.pipelines.values()):
                    problems.append((("pipelines", name, "write", "children"), f"child table {table} must be written by one pipeline only"))
        return problems

    def where(self, *loc: Any) -> str:
        """Where the value at `loc` came from: `icefloe.yaml:LINE`, `ICEFLOE__...` or `--set ...`."""
        return self._origins.describe(loc) if self._origins is not None else CONFIG_FILE

    def invalid(self, problems: list[Problem]) -> ConfigError:
        """The error for problems found after loading (by checks that need more than the config)."""
        return ConfigError(report(problems, self.where))

    def _bind(self, origins: Origins) -> None:
        self._origins = origins
        for name, pipeline in self.pipelines.items():
            pipeline._origins, pipeline._at = origins, ("pipelines", name)

"""The XML reader's options: validated into an `XmlSpec`, and compiled into the extraction stylesheet.

    record: case-file                       # element name of one record
    fields:                                 # column -> path relative to the record
      serial_number: {path: serial-number, type: long}
      status_code: {path: case-file-header/status-code, type: int}
      owner_countries: {path: case-file-owners/case-file-owner/nationality/country, repeated: true}
      kind: "@kind"                         # an attribute of the record itself ("." is its text)
    header: {version_no: version/version-no}               # paths from the document root
    children:
      classifications: {path: classifications/classification, fields: {code: international-code},
                        parent_key: [serial_number]}
    workers: 2    chunk_bytes: 512KiB    parallel_min_bytes: 16MiB
    engine: auto                            # xml2arrow inside records when installed, else lxml

A value is the element's text content (all descendant text, like XPath string()) or the attribute;
empty or missing is null; with several matches, the first in document order. Paths match elements
by local name, so namespaces need no declaring; `record` is matched as written in the file (with its
prefix, if it has one). Header paths see elements that end before the first record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from icefloe.config import parse_size
from icefloe.errors import ConfigError
from icefloe.pipelines.formats import XML_OPTIONS
from icefloe.types import arrow_type

__all__ = ["ENGINES", "OPTION_KEYS", "ChildSpec", "FieldSpec", "XmlSpec", "parse_spec", "stylesheets"]

OPTION_KEYS = XML_OPTIONS
ENGINES = ("auto", "lxml", "xml2arrow")  # the parser inside records (see xmlfast)
_FIELD_KEYS = ("path", "type", "format", "repeated")
_NAME = re.compile(r"^(?:[A-Za-z_][\w.\-]*:)?[A-Za-z_][\w.\-]*$")
_DATETIME = (pa.date32(), pa.timestamp("us"), pa.timestamp("us", tz="UTC"))


@dataclass(frozen=True)
class FieldSpec:
    name: str
    steps: tuple[str, ...]  # local names of the elements from the context element
    attr: str | None  # final @attribute, if any
    type: pa.DataType
    type_name: str
    format: str | None = None
    repeated: bool = False

    @property
    def path(self) -> str:
        return "/".join([*self.steps, *([f"@{self.attr}"] if self.attr else [])])


@dataclass(frozen=True)
class ChildSpec:
    name: str
    steps: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    parent_key: tuple[str, ...]


@dataclass(frozen=True)
class XmlSpec:
    record: str
    fields: tuple[FieldSpec, ...]
    header: tuple[FieldSpec, ...]
    children: tuple[ChildSpec, ...]
    workers: int
    chunk_bytes: int
    parallel_min_bytes: int
    engine: str = "auto"


def parse_spec(options: Mapping[str, Any]) -> XmlSpec:
    """Validate the reader options; every problem is a ConfigError saying what to write instead."""
    unknown = [key for key in options if key not in OPTION_KEYS]
    if unknown:
        raise ConfigError(f"unknown xml read option {unknown[0]!r}; known: {', '.join(OPTION_KEYS)}")
    record = options.get("record")
    if not isinstance(record, str) or not _NAME.match(record):
        raise ConfigError(f"xml read option 'record' must be the element name of one record (e.g. case-file), got {record!r}")
    fields = _fields(options.get("fields"), "fields", allow_repeated=True)
    header = _fields(options.get("header") or {}, "header", allow_repeated=False, required=False)
    taken = {f.name for f in fields}
    for column in header:
        if column.name in taken:
            raise ConfigError(f"xml header column {column.name!r} is also a field; rename one")
    children = tuple(_child(name, spec, fields) for name, spec in _mapping(options.get("children") or {}, "children").items())
    return XmlSpec(
        record=record,
        fields=fields,
        header=header,
        children=children,
        workers=_count(options, "workers", os.cpu_count() or 1, minimum=1),
        chunk_bytes=_size(options, "chunk_bytes", 512 << 10, minimum=1024),
        parallel_min_bytes=_size(options, "parallel_min_bytes", 16 << 20, minimum=0),
        engine=_engine(options.get("engine", "auto")),
    )


def _engine(value: Any) -> str:
    if value not in ENGINES:
        raise ConfigError(f"xml read option 'engine' must be one of {', '.join(ENGINES)}, got {value!r}")
    return str(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"xml read option {where!r} must be a mapping, got {type(value).__name__}")
    return value


def _fields(value: Any, where: str, *, allow_repeated: bool, required: bool = True) -> tuple[FieldSpec, ...]:
    if value is None and required:
        raise ConfigError(f"xml read option {where!r} is required: column -> path (e.g. serial_number: serial-number)")
    specs = tuple(_field(str(name), spec, where, allow_repeated) for name, spec in _mapping(value, where).items())
    if required and not specs:
        raise ConfigError(f"xml read option {where!r} must name at least one column")
    return specs


def _field(name: str, spec: Any, where: str, allow_repeated: bool) -> FieldSpec:
    label = f"xml {where} {name!r}"
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{label} must be a path or {{path, type, format, repeated}}, got {spec!r}")
    unknown = [key for key in spec if key not in _FIELD_KEYS]
    if unknown:
        raise ConfigError(f"{label}: unknown key {unknown[0]!r}; known: {', '.join(_FIELD_KEYS)}")
    steps, attr = _path(spec.get("path"), label, allow_attr=True)
    type_name = str(spec.get("type", "string"))
    try:
        dtype = arrow_type(type_name)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc.message}") from None
    fmt = spec.get("format")
    if fmt is not None and (not isinstance(fmt, str) or dtype not in _DATETIME):
        raise ConfigError(f"{label}: format applies to date and timestamp fields and is a strptime pattern, e.g. '%Y%m%d'")
    repeated = spec.get("repeated", False)
    if not isinstance(repeated, bool) or (repeated and not allow_repeated):
        raise ConfigError(f"{label}: repeated must be true or false" + ("" if allow_repeated else f" and is not supported in {where}"))
    return FieldSpec(name, steps, attr, dtype, type_name, fmt, repeated)


def _path(path: Any, label: str, *, allow_attr: bool) -> tuple[tuple[str, ...], str | None]:
    """`a/b/c`, `a/b/@x`, `@x` or `.` -> (('a','b','c'), None), (('a','b'), 'x'), ((), 'x'), ((), None);
    names are local."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{label}: path is required (element names separated by '/', optionally ending in @attribute)")
    if path.strip() == "." and allow_attr:  # the context element's own text
        return (), None
    parts = path.strip().split("/")
    attr = None
    if parts[-1].startswith("@"):
        if not allow_attr:
            raise ConfigError(f"{label}: path {path!r} must name elements, not an attribute")
        attr = parts.pop()[1:]
    for part in [*parts, *([attr] if attr is not None else [])]:
        if not _NAME.match(part):
            raise ConfigError(
                f"{label}: bad path {path!r}: {part!r} is not an element name; use names separated by '/' "
                "and optionally a final @attribute (no wildcards, '..' or '//')"
            )
    return tuple(p.split(":")[-1] for p in parts), attr.split(":")[-1] if attr else None


def _child(name: str, spec: Any, parent: tuple[FieldSpec, ...]) -> ChildSpec:
    label = f"xml child {name!r}"
    spec = _mapping(spec, f"children.{name}")
    unknown = [key for key in spec if key not in ("path", "fields", "parent_key")]
    if unknown:
        raise ConfigError(f"{label}: unknown key {unknown[0]!r}; known: path, fields, parent_key")
    steps, _ = _path(spec.get("path"), label, allow_attr=False)
    fields = _fields(spec.get("fields"), f"children.{name}.fields", allow_repeated=False)
    by_name = {f.name: f for f in parent}
    keys = spec.get("parent_key") or [parent[0].name]
    if isinstance(keys, str):
        keys = [keys]
    for key in keys:
        if key not in by_name or by_name[key].repeated:
            raise ConfigError(f"{label}: parent_key {key!r} must name a non-repeated parent field ({', '.join(by_name)})")
        if key in {f.name for f in fields}:
            raise ConfigError(f"{label}: column {key!r} is both a parent key and a child field")
    return ChildSpec(name, steps, fields, tuple(keys))


def _count(options: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"xml read option {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _size(options: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = options.get(key, default)
    try:
        size = parse_size(value)
    except ValueError:
        size = -1
    if isinstance(value, bool) or size < minimum:
        raise ConfigError(f"xml read option {key!r} must be a size >= {minimum} bytes (e.g. 4MiB), got {value!r}")
    return size


# --- the extraction stylesheet -------------------------------------------------------------------
#
# Output, for the records of one block (\x01 = field separator, \x02 = section separator; the
# worker substitutes noncharacters for both):
#   section 0: per record, per field: its value, or for a repeated field the number of matches;
#              then per child the number of child elements. Every cell ends with \x01.
#   then one section per repeated field (its values) and per child (its fields, row by row).


def stylesheets(spec: XmlSpec) -> tuple[str, str]:
    """(plain, local-name) stylesheet templates; the second matches names in any namespace."""
    return _stylesheet(spec, local=False), _stylesheet(spec, local=True)


def _stylesheet(spec: XmlSpec, local: bool) -> str:
    def select(steps: tuple[str, ...], attr: str | None) -> str:
        parts = [f"*[local-name()='{s}']" if local else s for s in steps]
        if attr is not None:
            parts.append(f"@*[local-name()='{attr}']" if local else f"@{attr}")
        return "/".join(parts) or "."

    out = ['<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">',
           '<xsl:output method="text" encoding="UTF-8"/><xsl:template match="/">']  # fmt: skip
    out.append('<xsl:for-each select="/*/*">')
    for f in spec.fields:
        expr = select(f.steps, f.attr)
        out.append(f'<xsl:value-of select="count({expr})"/>\x01' if f.repeated else f'<xsl:value-of select="{expr}"/>\x01')
    for child in spec.children:
        out.append(f'<xsl:value-of select="count({select(child.steps, None)})"/>\x01')
    out.append("</xsl:for-each>")
    for f in spec.fields:
        if f.repeated:
            out.append(f'\x02<xsl:for-each select="/*/*/{select(f.steps, f.attr)}"><xsl:value-of select="."/>\x01</xsl:for-each>')
    for child in spec.children:
        out.append(f'\x02<xsl:for-each select="/*/*/{select(child.steps, None)}">')
        out.extend(f'<xsl:value-of select="{select(f.steps, f.attr)}"/>\x01' for f in child.fields)
        out.append("</xsl:for-each>")
    out.append("</xsl:template></xsl:stylesheet>")
    return "".join(out)

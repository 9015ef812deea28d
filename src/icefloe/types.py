"""Column type names used in icefloe.yaml, mapped to Arrow types.

Partition specs (`day(ts)`, `bucket(16, id)`) are parsed here too, so config can check them.

Names follow Iceberg's primitive types so a schema reads the same in config and in the catalog:
`boolean int long float double string binary date time timestamp timestamptz decimal(P,S) uuid`,
and the nested `struct<name: type, ...>` and `list<type>`, nested to any depth
(`list<struct<sku: string, price: decimal(10,2)>>`). Field names keep their case.
"""

from __future__ import annotations

import re

import pyarrow as pa
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)

from icefloe.errors import ConfigError

__all__ = ["arrow_type", "TYPE_NAMES", "parse_partition", "with_undeclared"]

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.large_string(),
    "str": pa.large_string(),
    "binary": pa.large_binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
TYPE_NAMES = sorted(_SIMPLE) + ["decimal(P,S)", "list<type>", "struct<name: type, ...>"]
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][\w]*")
_FIELD_NAME = re.compile(r"[^\s:<>,]+")


def arrow_type(name: str) -> pa.DataType:
    parser = _TypeParser(name)
    dtype = parser.type()
    parser.end()
    return dtype


class _TypeParser:
    """Recursive descent over a type name; errors point at where the text stopped making sense."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def _skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def _fail(self, expected: str) -> ConfigError:
        rest = self.text[self.at :].strip()
        where = f" at {rest[:20]!r}" if rest else " at the end"
        if not any(c in self.text for c in "<>"):
            return ConfigError(f"unknown type {self.text!r}; known: {', '.join(TYPE_NAMES)}")
        return ConfigError(f"bad type {self.text!r}: expected {expected}{where}; known: {', '.join(TYPE_NAMES)}")

    def _expect(self, char: str) -> None:
        self._skip()
        if not self.text.startswith(char, self.at):
            raise self._fail(repr(char))
        self.at += 1

    def end(self) -> None:
        self._skip()
        if self.at != len(self.text):
            raise self._fail("the end of the type")

    def type(self) -> pa.DataType:
        self._skip()
        decimal = _DECIMAL.match(self.text, self.at)
        if decimal:
            self.at = decimal.end()
            precision, scale = int(decimal.group(1)), int(decimal.group(2))
            if not 1 <= precision <= 38 or scale > precision:
                raise ConfigError(f"decimal({precision},{scale}): precision must be 1..38 and scale <= precision")
            return pa.decimal128(precision, scale)
        word = _WORD.match(self.text, self.at)
        if not word:
            raise self._fail("a type")
        self.at = word.end()
        keyword = word.group().lower()
        if keyword == "list":
            self._expect("<")
            element = self.type()
            self._expect(">")
            return pa.list_(pa.field("element", element))  # the JSON reader takes no large_list; the lake widens
        if keyword == "struct":
            return self._struct()
        if keyword not in _SIMPLE:
            self.at = word.start()
            raise self._fail("a type")
        return _SIMPLE[keyword]

    def _struct(self) -> pa.DataType:
        self._expect("<")
        fields: list[pa.Field] = []
        while True:
            self._skip()
            name = _FIELD_NAME.match(self.text, self.at)
            if not name:
                raise self._fail("a field name")
            self.at = name.end()
            if name.group() in {f.name for f in fields}:
                raise ConfigError(f"bad type {self.text!r}: field {name.group()!r} appears twice")
            self._expect(":")
            fields.append(pa.field(name.group(), self.type()))
            self._skip()
            if self.text.startswith(">", self.at):
                self.at += 1
                return pa.struct(fields)
            self._expect(",")


def with_undeclared(declared: pa.DataType, actual: pa.DataType) -> pa.DataType:
    """`declared` plus the struct fields (at any depth) that `actual` has and `declared` lacks.

    Undeclared keys of a declared struct are inferred like undeclared columns, not cast away."""
    if pa.types.is_struct(declared) and pa.types.is_struct(actual):
        found = {f.name: f.type for f in actual}
        known = [f.with_type(with_undeclared(f.type, found[f.name])) if f.name in found else f for f in declared]
        return pa.struct(known + [f for f in actual if f.name not in {k.name for k in declared}])
    lists = (pa.types.is_list, pa.types.is_large_list)
    if any(t(declared) for t in lists) and any(t(actual) for t in lists):
        element = declared.value_field.with_type(with_undeclared(declared.value_type, actual.value_type))
        return pa.list_(element) if pa.types.is_list(declared) else pa.large_list(element)
    return declared


_TRANSFORM = re.compile(r"^\s*(\w+)\s*\(\s*(?:(\d+)\s*,\s*)?([^(),]*[^(),\s])\s*\)\s*$")
_BY_NAME: dict[str, type[Transform]] = {  # type: ignore[type-arg]
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
    "identity": IdentityTransform,
}


def parse_partition(spec: str) -> tuple[str, Transform, str]:  # type: ignore[type-arg]
    """`day(ts)`, `bucket(16, id)`, `truncate(4, name)`, `identity(c)` or a bare column name."""
    if re.fullmatch(r"[^(),]+", spec.strip()):  # a bare column name, any column name Iceberg allows
        return spec.strip(), IdentityTransform(), spec.strip()
    match = _TRANSFORM.match(spec)
    if not match:
        raise ConfigError(f"bad partition {spec!r}; use e.g. day(ts), bucket(16, id), truncate(4, name), col")
    name, width, column = match.group(1).lower(), match.group(2), match.group(3)
    if name in ("bucket", "truncate"):
        if width is None:
            raise ConfigError(f"partition {spec!r}: {name} needs a width, e.g. {name}(16, {column})")
        transform: Transform = BucketTransform(int(width)) if name == "bucket" else TruncateTransform(int(width))  # type: ignore[type-arg]
        return column, transform, f"{column}_{name}"
    if name not in _BY_NAME or width is not None:
        raise ConfigError(f"unknown partition transform {name!r} in {spec!r}")
    return column, _BY_NAME[name](), f"{column}_{name}" if name != "identity" else column  # type: ignore[call-arg]

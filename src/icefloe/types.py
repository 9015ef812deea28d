"""Column type names used in icefloe.yaml, mapped to Arrow types.

Partition specs (`day(ts)`, `bucket(16, id)`) are parsed here too, so config can check them.

Names follow Iceberg's primitive types so a schema reads the same in config and in the catalog:
`boolean int long float double string binary date time timestamp timestamptz decimal(P,S) uuid`,
and the nested `struct<name: type, ...>` and `list<type>`, nested to any depth
(`list<struct<sku: string, price: decimal(10,2)>>`). Field names keep their case.

Checking a name (`check_type`, `check_partition`: what config load does) needs neither pyarrow
nor pyiceberg, so a command that only reads the config and the ledger (`icefloe status`) does
not pay for importing them; `arrow_type` and `parse_partition` build the real objects.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from icefloe.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.transforms import Transform

__all__ = ["arrow_type", "check_partition", "check_type", "TYPE_NAMES", "parse_partition", "partition_parts", "with_undeclared"]

# name -> (pyarrow factory, its arguments)
_SIMPLE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "boolean": ("bool_", ()),
    "bool": ("bool_", ()),
    "int": ("int32", ()),
    "integer": ("int32", ()),
    "long": ("int64", ()),
    "bigint": ("int64", ()),
    "float": ("float32", ()),
    "double": ("float64", ()),
    "string": ("large_string", ()),
    "str": ("large_string", ()),
    "binary": ("large_binary", ()),
    "date": ("date32", ()),
    "time": ("time64", ("us",)),
    "timestamp": ("timestamp", ("us",)),
    "timestamptz": ("timestamp", ("us", "UTC")),
}
TYPE_NAMES = sorted(_SIMPLE) + ["decimal(P,S)", "list<type>", "struct<name: type, ...>"]
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][\w]*")
_FIELD_NAME = re.compile(r"[^\s:<>,]+")

# a parsed type: ("simple", name) | ("decimal", precision, scale) | ("list", element) |
# ("struct", ((field name, type), ...))
Parsed = tuple[Any, ...]


def check_type(name: str) -> Parsed:
    """Parse a type name (ConfigError naming where it stops making sense), without pyarrow."""
    parser = _TypeParser(name)
    parsed = parser.type()
    parser.end()
    return parsed


def arrow_type(name: str) -> pa.DataType:
    return _build(check_type(name))


def _build(parsed: Parsed) -> pa.DataType:
    import pyarrow as pa

    kind = parsed[0]
    if kind == "simple":
        factory, args = _SIMPLE[parsed[1]]
        return getattr(pa, factory)(*args)
    if kind == "decimal":
        return pa.decimal128(parsed[1], parsed[2])
    if kind == "list":
        return pa.list_(pa.field("element", _build(parsed[1])))  # the JSON reader takes no large_list; the lake widens
    return pa.struct([pa.field(field, _build(child)) for field, child in parsed[1]])


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

    def type(self) -> Parsed:
        self._skip()
        decimal = _DECIMAL.match(self.text, self.at)
        if decimal:
            self.at = decimal.end()
            precision, scale = int(decimal.group(1)), int(decimal.group(2))
            if not 1 <= precision <= 38 or scale > precision:
                raise ConfigError(f"decimal({precision},{scale}): precision must be 1..38 and scale <= precision")
            return ("decimal", precision, scale)
        word = _WORD.match(self.text, self.at)
        if not word:
            raise self._fail("a type")
        self.at = word.end()
        keyword = word.group().lower()
        if keyword == "list":
            self._expect("<")
            element = self.type()
            self._expect(">")
            return ("list", element)
        if keyword == "struct":
            return self._struct()
        if keyword not in _SIMPLE:
            self.at = word.start()
            raise self._fail("a type")
        return ("simple", keyword)

    def _struct(self) -> Parsed:
        self._expect("<")
        fields: list[tuple[str, Parsed]] = []
        while True:
            self._skip()
            name = _FIELD_NAME.match(self.text, self.at)
            if not name:
                raise self._fail("a field name")
            self.at = name.end()
            if name.group() in {f for f, _ in fields}:
                raise ConfigError(f"bad type {self.text!r}: field {name.group()!r} appears twice")
            self._expect(":")
            fields.append((name.group(), self.type()))
            self._skip()
            if self.text.startswith(">", self.at):
                self.at += 1
                return ("struct", tuple(fields))
            self._expect(",")


def with_undeclared(declared: pa.DataType, actual: pa.DataType) -> pa.DataType:
    """`declared` plus the struct fields (at any depth) that `actual` has and `declared` lacks.

    Undeclared keys of a declared struct are inferred like undeclared columns, not cast away."""
    import pyarrow as pa

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
_BY_NAME = {"year": "YearTransform", "month": "MonthTransform", "day": "DayTransform", "hour": "HourTransform",
            "identity": "IdentityTransform"}  # fmt: skip


def partition_parts(spec: str) -> tuple[str, str, int | None, str]:
    """(source column, transform name, width or None, partition field name) of a partition spec
    (`day(ts)`, `bucket(16, id)`, `truncate(4, name)`, `identity(c)` or a bare column name)."""
    if re.fullmatch(r"[^(),]+", spec.strip()):  # a bare column name, any column name Iceberg allows
        return spec.strip(), "identity", None, spec.strip()
    match = _TRANSFORM.match(spec)
    if not match:
        raise ConfigError(f"bad partition {spec!r}; use e.g. day(ts), bucket(16, id), truncate(4, name), col")
    name, width, column = match.group(1).lower(), match.group(2), match.group(3)
    if name in ("bucket", "truncate"):
        if width is None:
            raise ConfigError(f"partition {spec!r}: {name} needs a width, e.g. {name}(16, {column})")
        return column, name, int(width), f"{column}_{name}"
    if name not in _BY_NAME or width is not None:
        raise ConfigError(f"unknown partition transform {name!r} in {spec!r}")
    return column, name, None, f"{column}_{name}" if name != "identity" else column


def check_partition(spec: str) -> None:
    """ConfigError if `spec` is no partition spec (config load: no pyiceberg needed)."""
    partition_parts(spec)


def parse_partition(spec: str) -> tuple[str, Transform, str]:  # type: ignore[type-arg]
    """(source column, the pyiceberg transform, partition field name); see `partition_parts`."""
    from pyiceberg import transforms

    column, name, width, field = partition_parts(spec)
    if name == "bucket":
        return column, transforms.BucketTransform(width), field  # type: ignore[arg-type]
    if name == "truncate":
        return column, transforms.TruncateTransform(width), field  # type: ignore[arg-type]
    return column, getattr(transforms, _BY_NAME[name])(), field

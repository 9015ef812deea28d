"""Column type names used in icefloe.yaml, mapped to Arrow types.

Partition specs (`day(ts)`, `bucket(16, id)`) are parsed here too, so config can check them.

Names follow Iceberg's primitive types so a schema reads the same in config and in the catalog:
`boolean int long float double string binary date time timestamp timestamptz decimal(P,S) uuid`.
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

__all__ = ["arrow_type", "TYPE_NAMES", "parse_partition"]

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
TYPE_NAMES = sorted(_SIMPLE) + ["decimal(P,S)"]
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def arrow_type(name: str) -> pa.DataType:
    text = name.strip().lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    match = _DECIMAL.match(text)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ConfigError(f"decimal({precision},{scale}): precision must be 1..38 and scale <= precision")
        return pa.decimal128(precision, scale)
    raise ConfigError(f"unknown type {name!r}; known: {', '.join(TYPE_NAMES)}")


_TRANSFORM = re.compile(r"^\s*(\w+)\s*\(\s*(?:(\d+)\s*,\s*)?(\w+)\s*\)\s*$")
_BY_NAME: dict[str, type[Transform]] = {  # type: ignore[type-arg]
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
    "identity": IdentityTransform,
}


def parse_partition(spec: str) -> tuple[str, Transform, str]:  # type: ignore[type-arg]
    """`day(ts)`, `bucket(16, id)`, `truncate(4, name)`, `identity(c)` or a bare column name."""
    if re.fullmatch(r"\w+", spec.strip()):
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

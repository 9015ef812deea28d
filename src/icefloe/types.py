"""Column type names used in icefloe.yaml, mapped to Arrow types.

Names follow Iceberg's primitive types so a schema reads the same in config and in the catalog:
`boolean int long float double string binary date time timestamp timestamptz decimal(P,S) uuid`.
"""

from __future__ import annotations

import re

import pyarrow as pa

from icefloe.errors import ConfigError

__all__ = ["arrow_type", "TYPE_NAMES"]

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

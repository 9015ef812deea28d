"""What config load checks of a built-in format's read options, without importing its reader.

The readers import pyarrow's CSV, JSON and Parquet modules and lxml: most of what a command
that only reads the config and the ledger (`icefloe status`, `dlq list`) would import. Each
built-in format's option names and option check live here; the readers use the same ones, so
the two cannot disagree (tests/cli/test_lazy_imports.py also compares them). An XML pipeline's
options need the XML spec parser (`xmlspec.parse_spec`), imported for it when its config loads.
A format added with `register_reader` is checked through the registry, as before.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from icefloe.errors import ConfigError

__all__ = ["BUILTIN", "CSV_OPTIONS", "XML_OPTIONS", "CsvOptions", "check_encoding", "check_options", "csv_options",
           "is_char", "is_str_list", "option"]  # fmt: skip

CSV_OPTIONS = (
    "delimiter",
    "encoding",
    "header",
    "newlines_in_values",
    "null_values",
    "quote_char",
    "skip_rows",
    "timestamp_format",
)
XML_OPTIONS = ("record", "fields", "header", "children", "workers", "chunk_bytes", "parallel_min_bytes", "engine")


def check_options(options: dict[str, Any], allowed: Sequence[str], fmt: str) -> None:
    for key in options:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ConfigError(f"unknown {fmt} read option {key!r}; known: {known}")


def option(
    options: dict, key: str, default: Any, valid: Callable[[Any], bool], expected: str, fmt: str = "csv"
) -> Any:
    value = options.get(key, default)
    if not valid(value):
        raise ConfigError(f"{fmt} read option {key!r} must be {expected}, got {value!r}")
    return value


def is_char(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 1


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def check_encoding(name: Any) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"csv read option 'encoding' must be an encoding name such as latin-1, got {name!r}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ConfigError(f"csv read option 'encoding': unknown encoding {name!r} (e.g. utf-8, latin-1, cp1252)") from None


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str
    header: bool
    quote: str | None
    nulls: list[str]
    skip: int
    newlines: bool
    encoding: str
    formats: list[str]


def csv_options(options: dict[str, Any], tsv: bool = False) -> CsvOptions:
    """The CSV read options, checked: a ConfigError names the bad one (no file needed)."""
    check_options(options, CSV_OPTIONS, "csv")
    formats = option(
        options, "timestamp_format", None, lambda v: v is None or (bool(v) and is_str_list(v if isinstance(v, list) else [v])),
        'a strptime format such as "%d/%m/%Y %H:%M", or a list of them',
    )  # fmt: skip
    return CsvOptions(
        delimiter=option(options, "delimiter", "\t" if tsv else ",", is_char, "a single character"),
        header=option(options, "header", True, lambda v: isinstance(v, bool), "true or false"),
        quote=option(options, "quote_char", '"', lambda v: not v or is_char(v), "a single character or false") or None,
        nulls=option(options, "null_values", ["", "NULL", "null"], is_str_list, "a list of strings"),
        skip=option(options, "skip_rows", 0, lambda v: type(v) is int and v >= 0, "a non-negative integer"),
        newlines=option(options, "newlines_in_values", False, lambda v: isinstance(v, bool), "true or false"),
        encoding=check_encoding(options.get("encoding", "utf-8")),
        formats=[] if formats is None else formats if isinstance(formats, list) else [formats],
    )


def _xml_spec(options: dict[str, Any]) -> object:
    from icefloe.pipelines.readers.xmlspec import parse_spec

    return parse_spec(options)


# format -> (its read option names, the check of its options or None)
BUILTIN: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], object] | None]] = {
    "csv": (CSV_OPTIONS, csv_options),
    "ndjson": ((), None),
    "json": ((), None),
    "parquet": ((), None),
    "xml": (XML_OPTIONS, _xml_spec),
}

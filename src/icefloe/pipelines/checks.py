"""Data-quality checks: rows that fail go to quarantine with the names of the checks they failed.

    checks:
      - not_null: [order_id, ts]
      - range: {amount: [0, null]}            # inclusive; null = unbounded
      - accepted_values: {status: [new, paid]}
      - regex: {email: "^[^@]+@[^@]+$"}
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from icefloe.errors import ConfigError, DataError

if TYPE_CHECKING:  # config load validates checks without pyarrow; applying them imports it
    import pyarrow as pa

__all__ = ["CHECK_COLUMN", "validate_checks", "apply_checks", "check_columns"]

CHECK_COLUMN = "_icefloe_check"
KINDS = ("not_null", "range", "accepted_values", "regex")


def validate_checks(checks: list[dict[str, Any]]) -> None:
    for check in checks:
        if len(check) != 1 or next(iter(check)) not in KINDS:
            raise ConfigError(f"unknown check {check!r}; known: {', '.join(KINDS)}")
        kind, arg = next(iter(check.items()))
        if kind == "not_null" and not isinstance(arg, list):
            raise ConfigError("not_null takes a list of columns")
        if kind != "not_null" and not isinstance(arg, dict):
            raise ConfigError(f"{kind} takes a mapping of column -> rule")
        if kind == "range" and any(not isinstance(v, list) or len(v) != 2 for v in arg.values()):
            raise ConfigError("range takes {column: [min, max]} (null for unbounded)")


def check_columns(check: dict[str, Any]) -> tuple[str, list[str]]:
    """(kind, the columns it names) of one validated check."""
    kind, arg = next(iter(check.items()))
    return kind, [str(c) for c in arg]


def _bound(value: Any, type_: pa.DataType) -> pa.Scalar:
    import pyarrow as pa

    if pa.types.is_decimal(type_):
        # via text: an int64 -> decimal cast needs precision 21 and fails for decimal(12,2)
        return pa.scalar(Decimal(str(value)), type_)
    return pa.scalar(value).cast(type_)


def _column(batch: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in batch.column_names:
        raise DataError(f"check names column {name!r}, which the data does not have")
    return batch[name]


def _failures(batch: pa.Table, kind: str, arg: Any) -> list[tuple[str, pa.ChunkedArray]]:
    """(label, bool mask of failing rows) for each rule of one check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = []
    if kind == "not_null":
        for name in arg:
            out.append((f"not_null({name})", pc.is_null(_column(batch, name))))
    elif kind == "range":
        for name, (low, high) in arg.items():
            col = _column(batch, name)
            bad = pc.is_null(col)
            if low is not None:
                bad = pc.or_(bad, pc.less(col, _bound(low, col.type)))
            if high is not None:
                bad = pc.or_(bad, pc.greater(col, _bound(high, col.type)))
            out.append((f"range({name})", bad))
    elif kind == "accepted_values":
        for name, values in arg.items():
            col = _column(batch, name)
            ok = pc.is_in(col, value_set=pa.array(values).cast(col.type))
            out.append((f"accepted_values({name})", pc.invert(ok)))
    elif kind == "regex":
        for name, pattern in arg.items():
            col = _column(batch, name)
            ok = pc.fill_null(pc.match_substring_regex(col, pattern), False)
            out.append((f"regex({name})", pc.invert(ok)))
    return out


def apply_checks(batch: pa.Table, checks: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table | None]:
    """Split into (passing rows, failing rows + _icefloe_check) ."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not checks or batch.num_rows == 0:
        return batch, None
    rules = [rule for check in checks for rule in _failures(batch, *next(iter(check.items())))]
    any_bad = pc.fill_null(rules[0][1], True)
    for _, mask in rules[1:]:
        any_bad = pc.or_(any_bad, pc.fill_null(mask, True))
    if not pc.any(any_bad).as_py():
        return batch, None
    good = batch.filter(pc.invert(any_bad))
    bad = batch.filter(any_bad)
    per_rule = [(label, pc.fill_null(mask, True).filter(any_bad).to_pylist()) for label, mask in rules]
    reasons = pa.array(
        [",".join(label for label, failed in per_rule if failed[i]) for i in range(bad.num_rows)], pa.large_string()
    )
    return good, bad.append_column(CHECK_COLUMN, reasons)

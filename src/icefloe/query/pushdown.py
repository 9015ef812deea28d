"""Push simple WHERE predicates from a DuckDB query into pyiceberg's scan planning.

pyiceberg then prunes data files by partition values and column min/max statistics before DuckDB
opens any of them. Only what is certainly safe is pushed: `column <op> literal` conjuncts under a
plain `FROM table` (no join), for a table the query references exactly once, naming the column
bare or qualified by that table, with a literal that converts exactly to the column's type (the
same rows DuckDB's own comparison selects; a conversion that fails is simply not pushed). Everything else stays DuckDB's job, and DuckDB still
applies every predicate, so pushing less is never wrong, only slower.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import Any

import duckdb
from pyiceberg.exceptions import ValidationError
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)
from pyiceberg.expressions.visitors import bind
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, DecimalType, IntegerType, LongType, NestedField, StringType, TimestampType

__all__ = ["Predicate", "predicates_by_table", "to_iceberg"]

_OPS = {
    "COMPARE_EQUAL": EqualTo,
    "COMPARE_GREATERTHAN": GreaterThan,
    "COMPARE_GREATERTHANOREQUALTO": GreaterThanOrEqual,
    "COMPARE_LESSTHAN": LessThan,
    "COMPARE_LESSTHANOREQUALTO": LessThanOrEqual,
}
_FLIP = {
    "COMPARE_EQUAL": "COMPARE_EQUAL",
    "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
    "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
    "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
    "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
}
Predicate = tuple[str, str, str, str]  # (column, op, literal kind, literal text)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def _name(ref: dict[str, Any]) -> str:
    return f"{ref.get('schema_name', '')}.{ref.get('table_name', '')}".lower()


def _literal(node: dict[str, Any]) -> tuple[str, str] | None:
    if node.get("class") == "CONSTANT" and isinstance(node.get("literal"), dict):
        return node["literal"].get("kind", ""), node["literal"].get("text", "")
    return None


def _column(names: list[str], source: dict[str, Any]) -> str | None:
    """The column a reference names in this FROM, or None if it could be something else."""
    if len(names) == 1:
        return names[0]
    # a qualifier must be this table (or its alias): `p.x` could otherwise be field x of a
    # struct column p, and pushing it as the top-level column x would prune the wrong files
    table, schema = source.get("table_name", "").lower(), source.get("schema_name", "").lower()
    prefix = [n.lower() for n in names[:-1]]
    if prefix in ([source.get("alias", "").lower()] if source.get("alias") else [[table], [schema, table]]):
        return names[-1]
    return None


def _comparison(node: dict[str, Any], source: dict[str, Any]) -> Predicate | None:
    if node.get("class") != "COMPARISON" or node.get("type") not in _OPS:
        return None
    op, left, right = node["type"], node.get("left", {}), node.get("right", {})
    if left.get("class") != "COLUMN_REF":
        op, left, right = _FLIP[op], right, left
    literal = _literal(right)
    if left.get("class") != "COLUMN_REF" or literal is None:
        return None
    column = _column(left.get("column_names", []), source)
    return (column, op, literal[0], literal[1]) if column else None


def predicates_by_table(sql: str) -> dict[str, list[Predicate]]:
    """{"ns.table": [predicates]} for tables that can safely be pruned; {} if the SQL is unusual."""
    con = duckdb.connect()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duckdb.Error, json.JSONDecodeError, IndexError):
        return {}
    finally:
        con.close()
    if tree.get("error"):
        return {}
    refs = Counter(_name(n) for n in walk(tree) if n.get("type") == "BASE_TABLE")
    found: dict[str, list[Predicate]] = {}
    for node in walk(tree):
        source, where = node.get("from_table"), node.get("where_clause")
        if not isinstance(source, dict) or source.get("type") != "BASE_TABLE" or not isinstance(where, dict):
            continue
        name = _name(source)
        if refs[name] != 1:
            continue
        conjuncts = where.get("children", []) if where.get("type") == "CONJUNCTION_AND" else [where]
        predicates = [p for p in (_comparison(c, source) for c in conjuncts) if p is not None]
        if predicates:
            found[name] = predicates
    return found


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
# plain notation only: DuckDB types `1e3` as DOUBLE and compares in floating point
_NUMBER = re.compile(r"^-?\d+(_\d+)*(\.\d+(_\d+)*)?$")
_INT_RANGE: dict[type, int] = {IntegerType: 2**31, LongType: 2**63}


def _number(kind: str, text: str) -> Decimal | None:
    if kind not in ("INTEGER", "NUMERIC") or not _NUMBER.match(text):
        return None
    return Decimal(text.replace("_", ""))


def _value(field_type: Any, kind: str, text: str) -> Any:
    """The literal as a value of the column's type, or None when the conversion is not exact.

    Exact means: the pushed predicate selects the same rows DuckDB's comparison does. Floating
    point columns are never pushed (NaN and rounding make min/max pruning differ from DuckDB),
    nor are timestamptz ones (a zone-less string is read in the session's time zone).
    """
    if type(field_type) in _INT_RANGE:
        number = _number(kind, text)
        bound = _INT_RANGE[type(field_type)]
        if number is None or number != number.to_integral_value() or not -bound <= number < bound:
            return None
        return int(number)
    if isinstance(field_type, DecimalType):
        number = _number(kind, text)
        if number is None:
            return None
        with localcontext(prec=200):
            exact = number.quantize(Decimal(1).scaleb(-field_type.scale))
        if exact != number or len(exact.as_tuple().digits) > field_type.precision:
            return None
        return exact  # carries the column's scale, which pyiceberg's decimal literal requires
    if isinstance(field_type, StringType) and kind == "STRING":
        return text
    if isinstance(field_type, DateType) and kind == "STRING" and _DATE.match(text):
        return date.fromisoformat(text).isoformat()
    if isinstance(field_type, TimestampType) and kind == "STRING" and (_DATE.match(text) or _TIMESTAMP.match(text)):
        return datetime.fromisoformat(text).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return None


def _predicate(field: NestedField, op: str, kind: str, text: str, schema: Schema) -> BooleanExpression | None:
    try:
        value = _value(field.field_type, kind, text)
        if value is None:
            return None
        expression = _OPS[op](field.name, value)
        # binding converts the literal the way planning will; a name that resolves to another
        # field (a top-level `a.b` versus field b of struct a) is not pushed
        bound = bind(schema, expression, case_sensitive=True)
        terms = [t for t in (getattr(bound, "term", None),) if t is not None]
        if not terms or terms[0].ref().field.field_id != field.field_id:
            return None
        return expression
    except (ValueError, TypeError, ArithmeticError, ValidationError):
        return None  # not pushing is never wrong; DuckDB applies the predicate either way


def to_iceberg(predicates: list[Predicate], schema: Schema) -> BooleanExpression:
    expression: BooleanExpression = AlwaysTrue()
    by_name: dict[str, list[NestedField]] = {}
    for f in schema.fields:
        by_name.setdefault(f.name.lower(), []).append(f)
    for column, op, kind, text in predicates:
        fields = by_name.get(column.lower(), [])
        # DuckDB resolves names case-insensitively; two columns differing only in case are ambiguous
        predicate = _predicate(fields[0], op, kind, text, schema) if len(fields) == 1 else None
        if predicate is not None:
            expression = And(expression, predicate)
    return expression

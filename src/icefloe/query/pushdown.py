"""Push simple WHERE predicates from a DuckDB query into pyiceberg's scan planning.

pyiceberg then prunes data files by partition values and column min/max statistics before DuckDB
opens any of them. Only what is certainly safe is pushed: `column <op> literal` conjuncts under a
plain `FROM table` (no join), for a table the query references exactly once, with literal kinds
that convert exactly to the column's type. Everything else stays DuckDB's job, and DuckDB still
applies every predicate, so pushing less is never wrong, only slower.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import duckdb
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
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, DecimalType, IntegerType, LongType, StringType, TimestampType

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


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _name(ref: dict[str, Any]) -> str:
    return f"{ref.get('schema_name', '')}.{ref.get('table_name', '')}".lower()


def _literal(node: dict[str, Any]) -> tuple[str, str] | None:
    if node.get("class") == "CONSTANT" and isinstance(node.get("literal"), dict):
        return node["literal"].get("kind", ""), node["literal"].get("text", "")
    return None


def _comparison(node: dict[str, Any]) -> Predicate | None:
    if node.get("class") != "COMPARISON" or node.get("type") not in _OPS:
        return None
    op, left, right = node["type"], node.get("left", {}), node.get("right", {})
    if left.get("class") != "COLUMN_REF":
        op, left, right = _FLIP[op], right, left
    literal = _literal(right)
    if left.get("class") != "COLUMN_REF" or literal is None:
        return None
    return left["column_names"][-1], op, literal[0], literal[1]


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
    refs = Counter(_name(n) for n in _walk(tree) if n.get("type") == "BASE_TABLE")
    found: dict[str, list[Predicate]] = {}
    for node in _walk(tree):
        source, where = node.get("from_table"), node.get("where_clause")
        if not isinstance(source, dict) or source.get("type") != "BASE_TABLE" or not isinstance(where, dict):
            continue
        name = _name(source)
        if refs[name] != 1:
            continue
        conjuncts = where.get("children", []) if where.get("type") == "CONJUNCTION_AND" else [where]
        predicates = [p for p in (_comparison(c) for c in conjuncts) if p is not None]
        if predicates:
            found[name] = predicates
    return found


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")


def _value(field_type: Any, kind: str, text: str) -> Any:
    """The literal as a value of the column's type, or None when the conversion is not exact."""
    if isinstance(field_type, (IntegerType, LongType)) and kind == "INTEGER":
        return int(text)
    if isinstance(field_type, DecimalType) and kind in ("INTEGER", "NUMERIC"):
        decimals = len(text.partition(".")[2])
        return text if decimals <= field_type.scale else None
    if isinstance(field_type, StringType) and kind == "STRING":
        return text
    if isinstance(field_type, DateType) and kind == "STRING" and _DATE.match(text):
        return text
    if isinstance(field_type, TimestampType) and kind == "STRING":
        if _DATE.match(text):
            return text + "T00:00:00"
        if _TIMESTAMP.match(text):
            return text.replace(" ", "T")
    return None


def to_iceberg(predicates: list[Predicate], schema: Schema) -> BooleanExpression:
    expression: BooleanExpression = AlwaysTrue()
    columns = {f.name.lower(): f for f in schema.fields}
    for column, op, kind, text in predicates:
        field = columns.get(column.lower())
        value = _value(field.field_type, kind, text) if field is not None else None
        if field is None or value is None:
            continue
        if isinstance(field.field_type, DecimalType):
            from decimal import Decimal

            value = Decimal(value)
        expression = And(expression, _OPS[op](field.name, value))
    return expression

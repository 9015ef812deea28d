"""Push simple WHERE predicates from a DuckDB query into pyiceberg's scan planning.

pyiceberg then prunes data files by partition values and column min/max statistics before DuckDB
opens any of them. Only what is certainly safe is pushed: conjuncts under a plain `FROM table`
(no join), for a table the query references exactly once, naming the column bare or qualified by
that table, with literals that convert exactly to the column's type (the same rows DuckDB's own
comparison selects; a conversion that fails is simply not pushed). A conjunct is `column <op>
literal`, `column BETWEEN a AND b` (two such), `column IN (literals)` or an OR of equalities and
IN lists; an OR is pushed whole or not at all. A NULL in an IN list or an OR selects no row there
(the comparison is NULL, and WHERE keeps only TRUE), so it is left out. Everything else stays
DuckDB's job, and DuckDB still applies every predicate, so pushing less is never wrong, only slower.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
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
    In,
    LessThan,
    LessThanOrEqual,
    Or,
)
from pyiceberg.expressions.visitors import bind
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, DecimalType, IntegerType, LongType, NestedField, StringType, TimestampType

__all__ = ["AnyOf", "Comparison", "Predicate", "parse", "predicates_by_table", "predicates_in", "table_refs", "to_iceberg"]

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
Comparison = tuple[str, str, str, str]  # (column, op, literal kind, literal text)


@dataclass(frozen=True)
class AnyOf:
    """A disjunction of equalities (an IN list, or `a = 1 OR a = 2 OR b IN (3, 4)`)."""

    equalities: tuple[Comparison, ...]


Predicate = Comparison | AnyOf


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


def _comparison(node: dict[str, Any], source: dict[str, Any]) -> Comparison | None:
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


def _equalities(node: dict[str, Any], source: dict[str, Any]) -> list[Comparison] | None:
    """The equalities an IN list or an OR of equalities / IN lists stands for; None if it is
    anything else (then the whole conjunct stays DuckDB's). NULL literals select nothing."""
    if node.get("class") == "COMPARISON" and node.get("type") == "COMPARE_EQUAL":
        if _is_null(node.get("left", {})) or _is_null(node.get("right", {})):
            return []
        equality = _comparison(node, source)
        return [equality] if equality else None
    if node.get("class") == "OPERATOR" and node.get("type") == "COMPARE_IN":
        first, *values = node.get("children") or [{}]
        column = _column(first.get("column_names", []), source) if first.get("class") == "COLUMN_REF" else None
        literals = [_literal(v) for v in values if not _is_null(v)]
        if column is None or any(lit is None for lit in literals):
            return None
        return [(column, "COMPARE_EQUAL", kind, text) for kind, text in (lit for lit in literals if lit is not None)]
    if node.get("class") == "CONJUNCTION" and node.get("type") == "CONJUNCTION_OR":
        every: list[Comparison] = []
        for child in node.get("children", []):
            part = _equalities(child, source)
            if part is None:
                return None
            every += part
        return every
    return None


def _is_null(node: dict[str, Any]) -> bool:
    literal = _literal(node)
    return literal is not None and literal[0] == "NULL_LITERAL"


def _conjunct(node: dict[str, Any], source: dict[str, Any]) -> list[Predicate]:
    if node.get("class") == "BETWEEN" and node.get("type") == "COMPARE_BETWEEN":
        # inclusive on both ends; each bound is pushed on its own (one may convert, the other not)
        bounds = [("COMPARE_GREATERTHANOREQUALTO", node.get("lower", {})), ("COMPARE_LESSTHANOREQUALTO", node.get("upper", {}))]
        column = node.get("input", {})
        found = [_comparison({"class": "COMPARISON", "type": op, "left": column, "right": b}, source) for op, b in bounds]
        return [p for p in found if p is not None]
    equalities = _equalities(node, source) if node.get("class") in ("OPERATOR", "CONJUNCTION") else None
    if equalities:
        return [AnyOf(tuple(equalities))]
    comparison = _comparison(node, source)
    return [comparison] if comparison is not None else []


def parse(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any] | None:
    """DuckDB's parse tree of `sql` as JSON (None if it does not parse); nothing is run."""
    try:
        tree: dict[str, Any] = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duckdb.Error, json.JSONDecodeError, IndexError):
        return None
    return None if tree.get("error") else tree


def predicates_by_table(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, list[Predicate]]:
    """{"ns.table": [predicates]} for tables that can safely be pruned; {} if the SQL is unusual.

    `con` is a connection to parse with (the query engine's own); else a new one is opened."""
    own = con is None
    con = duckdb.connect() if con is None else con
    try:
        tree = parse(con, sql)
    finally:
        if own:
            con.close()
    return predicates_in(tree) if tree is not None else {}


def table_refs(tree: dict[str, Any]) -> set[str]:
    """The `schema.table` names the FROM clauses of a parse tree give, as written (not CTEs,
    which have no schema, nor three-part names)."""
    return {
        f"{n['schema_name']}.{n['table_name']}"
        for n in walk(tree)
        if n.get("type") == "BASE_TABLE" and n.get("schema_name") and n.get("table_name") and not n.get("catalog_name")
    }


def predicates_in(tree: dict[str, Any]) -> dict[str, list[Predicate]]:
    """`predicates_by_table` for a tree `parse` returned."""
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
        predicates = [p for c in conjuncts for p in _conjunct(c, source)]
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

    def one(column: str, op: str, kind: str, text: str) -> BooleanExpression | None:
        fields = by_name.get(column.lower(), [])
        # DuckDB resolves names case-insensitively; two columns differing only in case are ambiguous
        return _predicate(fields[0], op, kind, text, schema) if len(fields) == 1 else None

    for conjunct in predicates:
        predicate = _any_of(conjunct, one) if isinstance(conjunct, AnyOf) else one(*conjunct)
        if predicate is not None:
            expression = And(expression, predicate)
    return expression


def _any_of(disjunction: AnyOf, one: Any) -> BooleanExpression | None:
    """Or(In(...), EqualTo(...)) per column, or None unless every equality converts exactly:
    dropping one side of an OR would prune files holding rows the other side selects."""
    values: dict[str, list[Any]] = {}
    for column, op, kind, text in disjunction.equalities:
        predicate = one(column, op, kind, text)
        if not isinstance(predicate, EqualTo):
            return None
        values.setdefault(predicate.term.name, []).append(predicate.literal.value)  # type: ignore[attr-defined]
    parts: list[BooleanExpression] = [
        In(name, tuple(found)) if len(set(found)) > 1 else EqualTo(name, found[0])  # type: ignore[call-arg, arg-type]
        for name, found in values.items()
    ]
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = Or(result, part)
    return result

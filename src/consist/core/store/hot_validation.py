"""Checking incoming rows against a strict schema or an existing hot table.

Both checks build one aggregate query over the source (``TRY_CAST`` failures,
lossy fractional -> integer casts, NULLs in non-nullable columns) and run it
in a single scan, so that every offending column is named at once in an
:class:`~consist.core.store.hot_tables.IngestSchemaError`, before anything is
written. The functions take an open DuckDB connection and the source's
FROM-clause SQL (see :func:`consist.core.store.hot_store.validate_source`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from consist.core.store.hot_tables import GLOBAL_SCHEMA, ColumnSpec, IngestSchemaError
from consist.core.store.sql_text import quote_ident, sql_literal

_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}
    | {"UBIGINT", "UHUGEINT"}
)
_FRACTIONAL = ("FLOAT", "DOUBLE", "REAL", "DECIMAL")


def plain_item(name: str, sql_type: str) -> tuple[str, str, str]:
    """``(expr, name, type)`` for a source column without a schema.

    ENUM columns (pandas categoricals) are stored as VARCHAR, so that later
    ingests with other categories fit the same table.
    """
    if sql_type.upper().startswith("ENUM"):
        return f"CAST({quote_ident(name)} AS VARCHAR)", name, "VARCHAR"
    return quote_ident(name), name, sql_type


def text_columns(columns: Sequence[ColumnSpec] | None) -> frozenset[str]:
    """Lower-cased names of the ``str`` (VARCHAR) columns of a schema.

    A CSV file reads them as text instead of sniffing them, so that e.g.
    leading zeros survive.
    """
    return frozenset(c.name.lower() for c in columns or () if c.sql_type == "VARCHAR")


def _base_type(sql_type: str) -> str:
    return sql_type.split("(")[0].strip().upper()


def _same_type(a: str, b: str) -> bool:
    return a.replace(" ", "").upper() == b.replace(" ", "").upper()


def _lossy(source_type: str, target_type: str) -> bool:
    """Whether casting source -> target may round (fractional -> integer)."""
    return _base_type(target_type) in _INTEGER_TYPES and _base_type(source_type).startswith(
        _FRACTIONAL
    )


def schema_select(
    con: Any,
    from_sql: str,
    described: Sequence[tuple[str, str]],
    columns: Sequence[ColumnSpec],
    schema_label: str,
) -> list[tuple[str, str, str]]:
    """Validate the source against a strict schema; say how to select its columns.

    One aggregate query checks the casts and NULLs of every column at once.

    Parameters
    ----------
    con:
        An open DuckDB connection on which ``from_sql`` is readable.
    from_sql:
        The source's FROM-clause SQL.
    described:
        ``(name, type)`` of the source's columns.
    columns:
        The schema: the source must have exactly these columns (a missing
        one with a literal default is filled with it).
    schema_label:
        The schema's name, for messages.

    Returns
    -------
    list[tuple[str, str, str]]
        ``(select expression, column name, DuckDB type)`` per schema column.

    Raises
    ------
    IngestSchemaError
        Naming every column that is extra, missing, not castable or NULL
        where the schema forbids it.
    """
    by_lower = {name.lower(): (name, sql_type) for name, sql_type in described}
    wanted = {spec.name.lower() for spec in columns}
    problems: list[tuple[str, str]] = []
    for name, _ in described:
        if name.lower() not in wanted:
            problems.append((name, f"is not a field of {schema_label}"))
    checks: list[tuple[str, str, str]] = []  # (column, message template, count SQL)
    select: list[tuple[str, str, str]] = []
    for spec in columns:
        found = by_lower.get(spec.name.lower())
        if found is None:
            if spec.has_default and _is_literal(spec.default):
                sql_type = spec.sql_type or "VARCHAR"
                select.append(
                    (f"CAST({sql_literal(spec.default)} AS {sql_type})", spec.name, sql_type)
                )
            else:
                problems.append((spec.name, f"is required by {schema_label} but missing"))
            continue
        src_name, src_type = found
        target = spec.sql_type or src_type
        if any(src_type.upper().startswith(prefix) for prefix in spec.accepts):
            target = src_type
        col = quote_ident(src_name)
        if _same_type(src_type, target):
            select.append((col, spec.name, target))
        else:
            checks.append(
                (
                    spec.name,
                    f"{{n}} value(s) of type {src_type} cannot be converted to {target} "
                    f"as required by {schema_label}",
                    _bad_cast_count(col, src_type, target),
                )
            )
            select.append((f"CAST({col} AS {target})", spec.name, target))
        if not spec.nullable:
            checks.append(
                (
                    spec.name,
                    f"has {{n}} NULL value(s) but is not Optional in {schema_label}",
                    f"count(*) FILTER (WHERE {col} IS NULL)",
                )
            )
    problems += _run_checks(con, from_sql, checks)
    if problems:
        raise IngestSchemaError(f"data does not match schema {schema_label}", problems)
    return select


def check_against_table(
    con: Any,
    from_sql: str,
    select: Sequence[tuple[str, str, str]],
    existing: Sequence[tuple[str, str]],
    table: str,
) -> None:
    """Reject values that cannot be cast to the existing table's column types.

    Parameters
    ----------
    con, from_sql:
        An open DuckDB connection and the source's FROM-clause SQL.
    select:
        ``(expression, name, type)`` the ingest will insert.
    existing:
        ``(name, type)`` of the existing table's columns.
    table:
        The table's name in ``global_tables``, for the message.

    Raises
    ------
    IngestSchemaError
        Naming every column with values the existing column type cannot hold.
    """
    table_types = {name.lower(): sql_type for name, sql_type in existing}
    checks: list[tuple[str, str, str]] = []
    for expr, name, sql_type in select:
        target = table_types.get(name.lower())
        if target is None or _same_type(sql_type, target):
            continue
        checks.append(
            (
                name,
                f"{{n}} value(s) of type {sql_type} cannot be stored in the existing "
                f"{target} column",
                _bad_cast_count(f"({expr})", sql_type, target),
            )
        )
    problems = _run_checks(con, from_sql, checks)
    if problems:
        raise IngestSchemaError(
            f"rows do not fit {GLOBAL_SCHEMA}.{table} (column types never change)", problems
        )


def _bad_cast_count(expr: str, source_type: str, target_type: str) -> str:
    """SQL counting the values of ``expr`` that do not convert faithfully to ``target_type``."""
    cast = f"TRY_CAST({expr} AS {target_type})"
    cond = f"{expr} IS NOT NULL AND ({cast} IS NULL"
    if _lossy(source_type, target_type):
        cond += f" OR CAST({cast} AS DOUBLE) <> CAST({expr} AS DOUBLE)"
    return f"count(*) FILTER (WHERE {cond}))"


def _run_checks(
    con: Any, from_sql: str, checks: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    """Run all count checks in one scan; ``(column, message)`` for each non-zero count."""
    if not checks:
        return []
    counts = con.execute(f"SELECT {', '.join(c[2] for c in checks)} FROM {from_sql}").fetchall()[0]
    return [
        (column, template.format(n=n))
        for (column, template, _), n in zip(checks, counts, strict=True)
        if n
    ]


def _is_literal(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str | datetime)

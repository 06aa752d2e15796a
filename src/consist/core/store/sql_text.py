"""Quoting Python values into DuckDB SQL text, shared by the store modules.

Statements take values as bound parameters wherever DuckDB allows it; these
helpers cover the places it does not (identifiers, table functions such as
``read_parquet('<path>')``, inline ``VALUES`` lists and view DDL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consist.core.store.rows import to_db_time


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (``a"b`` -> ``"a""b"``)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal (``it's`` -> ``'it''s'``)."""
    return "'" + text.replace("'", "''") + "'"


def sql_literal(value: Any) -> str:
    """A SQL literal for a scalar Python value.

    Parameters
    ----------
    value:
        None, bool, int, float (``nan`` and ``inf`` included), str or
        datetime (written in the store's time zone convention).

    Returns
    -------
    str
        The literal, e.g. ``NULL``, ``TRUE``, ``42``, ``'text'``.

    Raises
    ------
    TypeError
        For any other type.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)"  # also covers nan / inf
    if isinstance(value, datetime):
        return f"TIMESTAMP '{to_db_time(value).isoformat(sep=' ')}'"
    if isinstance(value, str):
        return quote_literal(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def describe(con: Any, from_sql: str) -> list[tuple[str, str]]:
    """``(column name, DuckDB type)`` of ``SELECT * FROM <from_sql>``, in order."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {from_sql}").fetchall()
    return [(r[0], r[1]) for r in rows]

"""The SQL of schema profiling: column types and statistics in one scan.

Files are read in place on a private in-memory DuckDB connection (never the
store's): :func:`describe_parquet` gives a parquet file's columns as DuckDB types them,
:func:`sample_file` also computes statistics over at most ``sample_rows``
rows of a csv/json file. :func:`column_stats` runs the statistics query on
any connection (the store uses it for ingested tables, see
:meth:`consist.core.store.schema_store.SchemaStore.profile_table`). Turning
the results into profiles is :mod:`consist.core.hot.schema_profile`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from consist.core.store.schema_fields import stat_text
from consist.core.store.sql_text import describe, quote_ident, quote_literal

_SCALAR_STAT_TYPES = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
    r"UHUGEINT|FLOAT|REAL|DOUBLE|DECIMAL.*|VARCHAR|DATE|TIME|TIMESTAMP.*|UUID)$"
)


def stats_sql(columns: Sequence[tuple[str, str]], source_sql: str) -> str:
    """One scan computing ``count(*)`` then, per column, null count, min and max.

    Parameters
    ----------
    columns:
        ``(name, DuckDB type)``; min/max are only computed for scalar types
        and returned as text.
    source_sql:
        FROM-clause SQL of the rows to summarise.

    Returns
    -------
    str
        The ``SELECT`` statement (its result row is read by :func:`stats_from_row`).
    """
    parts = ["count(*)"]
    for name, kind in columns:
        q = quote_ident(name)
        parts.append(f"count(*) - count({q})")
        if _SCALAR_STAT_TYPES.match(kind.upper()):
            parts.append(f"CAST(min({q}) AS VARCHAR)")
            parts.append(f"CAST(max({q}) AS VARCHAR)")
        else:
            parts.append("NULL")
            parts.append("NULL")
    return f"SELECT {', '.join(parts)} FROM {source_sql}"


def stats_from_row(columns: Sequence[tuple[str, str]], row: Sequence[Any]) -> tuple[int, dict]:
    """``(row count, stats)`` from the result row of :func:`stats_sql`.

    ``stats`` is ``{column: {"null_count": int, "min": str, "max": str}}``
    (min/max only when known).
    """
    total = int(row[0])
    stats: dict[str, dict[str, Any]] = {}
    for i, (name, _) in enumerate(columns):
        nulls, low, high = row[1 + 3 * i : 4 + 3 * i]
        entry: dict[str, Any] = {"null_count": int(nulls)}
        if low is not None:
            entry["min"] = stat_text(low)
        if high is not None:
            entry["max"] = stat_text(high)
        stats[name] = entry
    return total, stats


def column_stats(
    con: Any,
    columns: Sequence[tuple[str, str]],
    source_sql: str,
    params: Sequence[Any] = (),
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run :func:`stats_sql` on ``con``; ``(row count, stats)`` as :func:`stats_from_row`."""
    row = con.execute(stats_sql(columns, source_sql), list(params)).fetchone()
    return stats_from_row(columns, row)


def describe_parquet(path: str) -> list[tuple[str, str]]:
    """``(column, DuckDB type)`` of a parquet file, from its footer (no row is read).

    Raises
    ------
    duckdb.Error
        If DuckDB cannot read the file.
    """
    import duckdb

    con = duckdb.connect()
    try:
        return describe(con, f"read_parquet({quote_literal(path)})")
    finally:
        con.close()


def sample_file(
    path: str, driver: str, sample_rows: int
) -> tuple[list[tuple[str, str]], int, dict[str, dict[str, Any]]]:
    """Sniff a csv/json file's column types and statistics from its first rows.

    Parameters
    ----------
    path:
        The file.
    driver:
        ``"csv"`` or ``"json"``.
    sample_rows:
        Rows to sniff types from and to summarise.

    Returns
    -------
    tuple
        ``(columns, rows read, stats)``: ``(name, DuckDB type)`` columns and
        statistics as :func:`stats_from_row`.

    Raises
    ------
    duckdb.Error
        If DuckDB cannot read the file.
    """
    import duckdb

    reader = "read_csv" if driver == "csv" else "read_json"
    source_sql = f"{reader}({quote_literal(path)}, sample_size={int(sample_rows)})"
    con = duckdb.connect()
    try:
        described = describe(con, source_sql)
        sampled, stats = column_stats(
            con, described, f"(SELECT * FROM {source_sql} LIMIT {int(sample_rows)})"
        )
    finally:
        con.close()
    return described, sampled, stats

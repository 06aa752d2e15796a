"""Where ingested rows physically live in a DuckDB store, and the view over them.

Since schema version 9 the rows of ``global_tables.<t>`` are stored in the
table ``hot_rows.<t>``: the data columns plus one ``consist_ingest INTEGER``,
the ingest number the ``ingested_artifact`` ledger gives each ``(artifact,
table)``. ``global_tables.<t>`` is a view that adds the provenance columns
(``consist_run_id``, ``consist_artifact_id``, ``consist_year``,
``consist_iteration``) from the ledger, so every reader (SQL, ``load``,
views, exports) sees the same columns as before.

Why: the four constant provenance columns written on every row cost about
as much as the data itself (a million-row, five-column ingest took 1.85x
DuckDB's own ``CREATE TABLE AS``; with the single integer column, 1.05x).
The view looks the provenance up in per-table maps built from the ledger
(a cross join with one row, then ``map_extract`` per row) rather than by a
join, because a hash join would hand rows back out of insertion order;
``SELECT * FROM global_tables.t`` keeps the order the rows were ingested in.
Readers that know the artifact (``load``, schema profiling) read
``hot_rows.<t>`` by ingest number directly.

PostgreSQL stores keep the provenance columns on every row (their ingest is
a binary COPY, where the columns cost little); only the DuckDB store uses
this layout.
"""

from __future__ import annotations

from typing import Any

from consist.core.store.hot_tables import GLOBAL_SCHEMA, PROVENANCE_NAMES
from consist.core.store.sql_text import quote_ident, quote_literal

ROWS_SCHEMA = "hot_rows"
INGEST_COLUMN = "consist_ingest"


def rows_table(table: str) -> str:
    """``hot_rows."<table>"`` for use in SQL."""
    return f"{ROWS_SCHEMA}.{quote_ident(table)}"


def view_sql(table: str) -> str:
    """``CREATE OR REPLACE VIEW global_tables."<table>"`` over its rows and the ledger."""
    name = quote_literal(table)
    maps = ", ".join(
        f"map_from_entries(list((ingest_no, {value}))) AS {alias}"
        for value, alias in (
            ("run_id", "run_ids"),
            ("CAST(artifact_id AS VARCHAR)", "artifact_ids"),
            ("year", "years"),
            ("iteration", "iterations"),
        )
    )
    # map_extract(...)[1]: the value on every DuckDB version (older ones return a list).
    return (
        f"CREATE OR REPLACE VIEW {GLOBAL_SCHEMA}.{quote_ident(table)} AS "
        f"SELECT r.* EXCLUDE ({INGEST_COLUMN}), "
        f"CAST(map_extract(p.run_ids, r.{INGEST_COLUMN})[1] AS VARCHAR) AS consist_run_id, "
        f"CAST(map_extract(p.artifact_ids, r.{INGEST_COLUMN})[1] AS VARCHAR) "
        "AS consist_artifact_id, "
        f"CAST(map_extract(p.years, r.{INGEST_COLUMN})[1] AS INTEGER) AS consist_year, "
        f"CAST(map_extract(p.iterations, r.{INGEST_COLUMN})[1] AS INTEGER) "
        "AS consist_iteration "
        f"FROM {rows_table(table)} AS r, "
        f"(SELECT {maps} FROM ingested_artifact "
        f"WHERE lower(table_name) = lower({name}) AND ingest_no IS NOT NULL) AS p"
    )


def rows_table_exists(con: Any, table: str) -> bool:
    """Whether ``hot_rows.<table>`` exists (case-insensitive)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND lower(table_name) = lower(?)",
            [ROWS_SCHEMA, table],
        ).fetchall()[0][0]
    )


def ingest_number(con: Any, artifact_id: str, table: str) -> tuple[int, bool]:
    """The ingest number of ``(artifact, table)``: ``(number, already in the ledger)``.

    A re-ingest keeps its number (its old rows are deleted by it); a new
    one gets the next number of the whole ledger. Called inside the
    ingest's write transaction, which DuckDB's single writer serializes.
    """
    known = _known_number(con, artifact_id, table)
    if known is not None:
        return known, True
    top = con.execute("SELECT coalesce(max(ingest_no), 0) FROM ingested_artifact").fetchall()
    return int(top[0][0]) + 1, False


def _known_number(con: Any, artifact_id: str, table: str) -> int | None:
    row = con.execute(
        "SELECT ingest_no FROM ingested_artifact "
        "WHERE artifact_id = ? AND lower(table_name) = lower(?) AND ingest_no IS NOT NULL",
        [artifact_id, table],
    ).fetchall()
    return int(row[0][0]) if row else None


def artifact_rows_source(con: Any, table: str, artifact_id: str) -> tuple[str, list[Any], bool]:
    """The fastest FROM-clause SQL and parameters for one artifact's rows of ``table``.

    ``hot_rows.<table>`` filtered by ingest number when the ledger knows the
    artifact there (third value True: the relation has the data columns and
    ``consist_ingest``, no provenance columns), else the ``global_tables``
    relation filtered by ``consist_artifact_id`` (False: data and provenance
    columns).
    """
    if rows_table_exists(con, table):
        known = _known_number(con, artifact_id, table)
        if known is not None:
            return (
                f"(SELECT * FROM {rows_table(table)} WHERE {INGEST_COLUMN} = ?)",
                [known],
                True,
            )
    return (
        f"(SELECT * FROM {GLOBAL_SCHEMA}.{quote_ident(table)} WHERE consist_artifact_id = ?)",
        [artifact_id],
        False,
    )


def convert_legacy_tables(con: Any) -> None:
    """Move the rows of every ``global_tables`` base table into this layout (migration 9).

    Each table that carries ``consist_artifact_id`` and whose every row
    names an artifact (a UUID) is converted: artifacts the ledger lacks get
    a ledger row (mode ``"migrated"``), every ledger row of the table gets
    an ingest number and its year and iteration, the rows are copied (in
    their order) into ``hot_rows.<t>`` and the table is replaced by the
    view. Other tables (made by other means) are left as they are.
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ROWS_SCHEMA}")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? ORDER BY table_name",
            [GLOBAL_SCHEMA],
        ).fetchall()
    ]
    for table in tables:
        columns = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = "
                "current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [GLOBAL_SCHEMA, table],
            ).fetchall()
        ]
        if "consist_artifact_id" not in columns or INGEST_COLUMN in columns:
            continue
        _convert_table(con, table, columns)


def _convert_table(con: Any, table: str, columns: list[str]) -> None:
    source = f"{GLOBAL_SCHEMA}.{quote_ident(table)}"
    name = quote_literal(table)
    unnamed = con.execute(
        f"SELECT count(*) FROM {source} WHERE TRY_CAST(consist_artifact_id AS UUID) IS NULL"
    ).fetchall()[0][0]
    if unnamed:
        return
    data = [c for c in columns if c.lower() not in PROVENANCE_NAMES]
    has = {c.lower() for c in columns}
    year = "consist_year" if "consist_year" in has else "NULL"
    iteration = "consist_iteration" if "consist_iteration" in has else "NULL"
    run = "consist_run_id" if "consist_run_id" in has else "NULL"
    groups = (
        f"SELECT TRY_CAST(consist_artifact_id AS UUID) AS aid, any_value({run}) AS run_id, "
        f"any_value({year}) AS year, any_value({iteration}) AS iteration, "
        f"count(*) AS n FROM {source} GROUP BY 1"
    )
    data_list = "[" + ", ".join(quote_literal(c) for c in data) + "]"
    con.execute(
        "INSERT INTO ingested_artifact (artifact_id, table_name, artifact_key, run_id, "
        "row_count, mode, columns, ingested_at) "
        f"SELECT g.aid, {name}, {name}, g.run_id, g.n, 'migrated', {data_list}, "
        "CAST(now() AS TIMESTAMP) "
        f"FROM ({groups}) AS g WHERE NOT EXISTS (SELECT 1 FROM ingested_artifact l "
        f"WHERE l.artifact_id = g.aid AND lower(l.table_name) = lower({name}))"
    )
    top = con.execute("SELECT coalesce(max(ingest_no), 0) FROM ingested_artifact").fetchall()[0][0]
    con.execute(
        "UPDATE ingested_artifact AS l SET ingest_no = n.no, year = n.year, "
        "iteration = n.iteration FROM ("
        f"SELECT g.aid, g.year, g.iteration, {int(top)} + row_number() OVER (ORDER BY g.aid) "
        f"AS no FROM ({groups}) AS g) AS n "
        f"WHERE l.artifact_id = n.aid AND lower(l.table_name) = lower({name})"
    )
    kept = ", ".join(f"r.{quote_ident(c)}" for c in data)
    kept = f"{kept}, " if kept else ""
    con.execute(
        f"CREATE TABLE {rows_table(table)} AS SELECT {kept}"
        f"CAST(map_extract(p.nos, TRY_CAST(r.consist_artifact_id AS UUID))[1] AS INTEGER) "
        f"AS {INGEST_COLUMN} FROM {source} AS r, "
        "(SELECT map_from_entries(list((artifact_id, ingest_no))) AS nos "
        f"FROM ingested_artifact WHERE lower(table_name) = lower({name})) AS p"
    )
    con.execute(f"DROP TABLE {source}")
    con.execute(view_sql(table))

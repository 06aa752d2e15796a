"""All SQL of hybrid views: the catalog reads, the ``SELECT`` and the view DDL.

A hybrid view is ``UNION ALL BY NAME`` of the hot rows (tables of
``global_tables`` carrying ``consist_artifact_id``) and of the cold
artifacts' files (parquet/csv/json, one ``read_*`` scan per format over all
files of the view, joined to an inline table giving each file's rows the
provenance columns), projected onto the requested columns, optionally
joined to typed facet columns. Views live in DuckDB's ``main`` schema, next
to the metadata tables (whose names they may not take). Which artifacts a
view covers and what happens to missing files is decided by
:mod:`consist.core.hot.views`; the metadata queries that select them live in
:mod:`consist.core.store.schema_store`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from consist.core.store.connection import all_cores
from consist.core.store.hot_tables import GLOBAL_SCHEMA, table_name_for
from consist.core.store.schema_fields import SYSTEM_COLUMNS, is_system_column
from consist.core.store.schema_store import ViewSource
from consist.core.store.sql_text import quote_ident as qi
from consist.core.store.sql_text import quote_literal as ql

HOT_SCHEMA = GLOBAL_SCHEMA
# Drivers whose files a view reads in place, and the DuckDB function reading them.
COLD_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}

_FILE_COLUMN = "__consist_file"


@dataclass
class FacetColumn:
    """A typed ``facet_<key>`` column attached to a grouped view."""

    column: str
    namespace: str | None
    key: str
    sql_type: str = "VARCHAR"
    values: dict[str, Any] = field(default_factory=dict)  # artifact id -> value


@dataclass(frozen=True)
class HotRows:
    """Where the hot rows of a view's artifacts are.

    Attributes
    ----------
    tables:
        ``{table: columns}`` of the ``global_tables`` tables that carry
        ``consist_artifact_id``.
    hot_of:
        ``{artifact id: table}`` of the hot artifacts.
    concept_table:
        The key's own table (a hybrid view over a key takes all its rows), or None.
    """

    tables: dict[str, list[str]]
    hot_of: dict[str, str]
    concept_table: str | None


class ViewStore:
    """Creates views in the store's DuckDB database.

    Parameters
    ----------
    connections:
        The store's :class:`~consist.core.store.connection.DuckDBConnectionManager`.
    """

    def __init__(self, connections: Any) -> None:
        self.connections = connections

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep one connection for the duration (the calls made inside share it).

        DuckDB uses all its threads meanwhile (views scan ingested tables).
        """
        with all_cores(self.connections), self.connections.connection():
            yield

    def check_view_name(self, view_name: str, if_exists: str) -> None:
        """Check that a view may be created under ``view_name``.

        Parameters
        ----------
        view_name:
            The view's name in the ``main`` schema.
        if_exists:
            ``"replace"`` or ``"error"``.

        Raises
        ------
        ValueError
            If the name is a table's, or a view's with ``if_exists="error"``.
        """
        with self.connections.connection() as con:
            _check_name(con, view_name, if_exists)

    def locate_hot(
        self, ids: Sequence[str], ledger: Mapping[str, str], concept_key: str | None
    ) -> HotRows:
        """Find the hot rows of the selected artifacts (and of the key's own table).

        Parameters
        ----------
        ids:
            The selected artifacts.
        ledger:
            ``{artifact id: table}`` from the ingest ledger; tables it does
            not know are scanned for the ids.
        concept_key:
            For a view over one key: its table contributes every row.

        Returns
        -------
        HotRows
        """
        with self.connections.connection() as con:  # inside hold(): all threads
            tables = _hot_tables(con)
            hot_of = _hot_index(con, tables, ids, ledger)
            concept_table = _concept_table(tables, concept_key)
            if concept_table is not None:
                for aid in _ids_in(con, concept_table, ledger):
                    hot_of.setdefault(aid, concept_table)
        return HotRows(tables=tables, hot_of=hot_of, concept_table=concept_table)

    def create_view(
        self,
        view_name: str,
        *,
        hot: HotRows | None,
        ids: Sequence[str],
        cold: Sequence[tuple[ViewSource, str]],
        columns: Sequence[tuple[str, str]] | None,
        attach: Sequence[FacetColumn],
        include_system_columns: bool,
        empty_columns: Sequence[tuple[str, str]] | None = None,
    ) -> tuple[str, list[str]]:
        """Create (or replace) ``view_name`` over hot rows and cold files.

        Parameters
        ----------
        view_name:
            The view's name (checked with :meth:`check_view_name`).
        hot:
            The hot rows to include (None: no hot rows).
        ids:
            The selected artifacts (hot rows of other tables are filtered by them).
        cold:
            ``(source, absolute local path)`` of the files to read in place.
        columns:
            ``(name, DuckDB type)`` to project (absent ones are NULL of that
            type); None keeps every column.
        attach:
            Typed facet columns joined by ``consist_artifact_id``.
        include_system_columns:
            Keep the ``consist_*`` columns.
        empty_columns:
            ``(name, DuckDB type)`` of the view when no hot rows and no file
            are selected (e.g. the schema a grouped view selects by), so an
            empty view still has its columns; None: only the system columns.

        Returns
        -------
        tuple[str, list[str]]
            The view's ``SELECT`` and its columns, in order.
        """
        with self.connections.connection() as con:
            parts: list[str] = []
            if hot is not None:
                parts += _hot_parts(hot.tables, hot.hot_of, ids, hot.concept_table)
            parts += _cold_parts(con, cold)
            union = "\nUNION ALL BY NAME\n".join(parts) if parts else _empty_system_select()
            if not parts and columns is None and empty_columns:
                columns = empty_columns
            available = [r[0] for r in con.execute(f"DESCRIBE {union}").fetchall()]
            select = projection(
                union,
                available,
                columns,
                attach,
                include_system_columns,
                literal=_literal,
                sql_type=lambda duck: duck,
                star=True,
            )
            con.execute(f"CREATE OR REPLACE VIEW {qi(view_name)} AS {select}")
            described = con.execute(f"DESCRIBE {qi(view_name)}").fetchall()
        return select, [r[0] for r in described]


# --------------------------------------------------------------------------- #
# Catalog reads and SQL building
# --------------------------------------------------------------------------- #
def _check_name(con: Any, view_name: str, if_exists: str) -> None:
    rows = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND lower(table_name) = lower(?)",
        [view_name],
    ).fetchall()
    if not rows:
        return
    if rows[0][0] != "VIEW":
        raise ValueError(
            f"view_name={view_name!r} is the name of a table in the store; choose another name"
        )
    if if_exists == "error":
        raise ValueError(
            f"view {view_name!r} already exists; pass if_exists='replace' to replace it"
        )


def _hot_table(table: str) -> str:
    """``"global_tables"."<table>"`` for use in SQL."""
    return f"{qi(HOT_SCHEMA)}.{qi(table)}"


def _hot_tables(con: Any) -> dict[str, list[str]]:
    """``{table: columns}`` of ``global_tables`` tables with ``consist_artifact_id``."""
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
        [HOT_SCHEMA],
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return {t: cols for t, cols in tables.items() if "consist_artifact_id" in cols}


def _ids_in(con: Any, table: str, ledger: Mapping[str, str]) -> list[str]:
    """Artifact ids with rows in ``table`` (from the ledger when it knows the table)."""
    known = [aid for aid, t in ledger.items() if t.lower() == table.lower()]
    if known:
        return known
    rows = con.execute(
        f"SELECT DISTINCT CAST(consist_artifact_id AS VARCHAR) "
        f"FROM {_hot_table(table)} WHERE consist_artifact_id IS NOT NULL"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _hot_index(
    con: Any, tables: Mapping[str, list[str]], ids: Sequence[str], ledger: Mapping[str, str]
) -> dict[str, str]:
    """``{artifact id: hot table}`` for the selected artifacts.

    The ingest ledger answers for the tables it knows; tables it does not
    know (created by other means) are scanned for the ids.
    """
    found: dict[str, str] = {}
    if not ids:
        return found
    by_lower = {t.lower(): t for t in tables}
    ledgered = {t.lower() for t in ledger.values()}
    for aid in ids:
        table = ledger.get(aid)
        if table is not None and table.lower() in by_lower:
            found[aid] = by_lower[table.lower()]
    for table in sorted(tables):
        if table.lower() in ledgered:
            continue
        rows = con.execute(
            f"SELECT DISTINCT CAST(consist_artifact_id AS VARCHAR) "
            f"FROM {_hot_table(table)} "
            "WHERE CAST(consist_artifact_id AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            [list(ids)],
        ).fetchall()
        for (aid,) in rows:
            found.setdefault(aid, table)
    return found


def _concept_table(tables: Mapping[str, list[str]], key: str | None) -> str | None:
    if key is None:
        return None
    by_lower = {t.lower(): t for t in tables}
    for candidate in (key, table_name_for(key)):
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None


def _hot_parts(
    tables: Mapping[str, list[str]],
    hot_of: Mapping[str, str],
    ids: Sequence[str],
    concept_table: str | None,
) -> list[str]:
    parts = []
    wanted = set(ids)
    by_table: dict[str, list[str]] = {}
    for aid, table in hot_of.items():
        if aid in wanted and table != concept_table:
            by_table.setdefault(table, []).append(aid)
    if concept_table is not None:
        by_table[concept_table] = []  # the whole table
    for table in sorted(by_table):
        hidden = [c for c in tables[table] if c.startswith("_dlt_")]
        star = "*" + (f" EXCLUDE ({', '.join(qi(c) for c in hidden)})" if hidden else "")
        sql = f"SELECT {star} FROM {_hot_table(table)}"
        if table != concept_table:
            id_list = ", ".join(ql(a) for a in sorted(by_table[table]))
            sql += f" WHERE CAST(consist_artifact_id AS VARCHAR) IN ({id_list})"
        parts.append(sql)
    return parts


def _cold_parts(con: Any, readable: Sequence[tuple[ViewSource, str]]) -> list[str]:
    by_driver: dict[str, list[tuple[ViewSource, str]]] = {}
    for source, path in readable:
        by_driver.setdefault(source.driver, []).append((source, path))
    parts = []
    for driver in sorted(by_driver):
        entries = by_driver[driver]
        files = sorted({path for _, path in entries})
        reader = COLD_READERS[driver]
        file_list = "[" + ", ".join(ql(f) for f in files) + "]"
        scan = f"{reader}({file_list}, union_by_name = true, filename = {ql(_FILE_COLUMN)})"
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
        drop = [_FILE_COLUMN] + [c for c in present if c in SYSTEM_COLUMNS]
        rows = []
        for source, path in entries:
            rows.append(
                "("
                + ", ".join(
                    [
                        _literal(path, "VARCHAR"),
                        _literal(source.run_id, "VARCHAR"),
                        _literal(source.artifact_id, "VARCHAR"),
                        _literal(source.year, "INTEGER"),
                        _literal(source.iteration, "INTEGER"),
                    ]
                )
                + ")"
            )
        provenance = (
            f"(VALUES {', '.join(rows)}) AS p({qi(_FILE_COLUMN)}, "
            + ", ".join(qi(c) for c in SYSTEM_COLUMNS)
            + ")"
        )
        system = ", ".join(f"p.{qi(c)}" for c in SYSTEM_COLUMNS)
        parts.append(
            f"SELECT d.* EXCLUDE ({', '.join(qi(c) for c in drop)}), {system} "
            f"FROM {scan} AS d JOIN {provenance} "
            f"ON d.{qi(_FILE_COLUMN)} = p.{qi(_FILE_COLUMN)}"
        )
    return parts


def projection(
    union: str,
    available: Sequence[str],
    columns: Sequence[tuple[str, str]] | None,
    attach: Sequence[FacetColumn],
    include_system_columns: bool,
    *,
    literal: Callable[[Any, str], str],
    sql_type: Callable[[str], str],
    star: bool,
) -> str:
    """The ``SELECT`` of a view over ``union`` (aliased ``u``), shared by both engines.

    ``columns``: the view's columns in order (missing ones read NULL), or
    None for every available column, data columns first and then the system
    columns, whatever order the tables have them in (a column added to a
    table by a later ingest comes after the provenance columns in a
    PostgreSQL table). ``star``: select the data columns as ``u.* EXCLUDE``
    (DuckDB: the view follows the tables' new columns) instead of by name.
    ``literal`` / ``sql_type`` write values and DuckDB types in the engine's
    dialect.
    """
    present = set(available)
    if columns is not None:
        items = [
            f"u.{qi(name)}" if name in present else f"CAST(NULL AS {sql_type(kind)}) AS {qi(name)}"
            for name, kind in columns
            if name not in SYSTEM_COLUMNS
        ]
        if include_system_columns:
            items += [
                f"u.{qi(c)}" if c in present else f"CAST(NULL AS {sql_type(t)}) AS {qi(c)}"
                for c, t in SYSTEM_COLUMNS.items()
            ]
    else:
        system = [c for c in available if is_system_column(c)]
        if not star:
            items = [f"u.{qi(c)}" for c in available if not is_system_column(c)]
        elif system and len(system) == len(present):
            items = []  # nothing but system columns
        else:
            items = ["u.*" + (f" EXCLUDE ({', '.join(qi(c) for c in system)})" if system else "")]
        if include_system_columns:
            items += [f"u.{qi(c)}" for c in system]
    join = facet_join(attach, literal, sql_type)
    items += [f"f.{qi(fc.column)}" for fc in attach]
    if not items:
        items = [f"CAST(NULL AS {sql_type('VARCHAR')}) AS consist_empty"]
    return f"SELECT {', '.join(items)} FROM ({union}) AS u{join}"


def facet_join(
    attach: Sequence[FacetColumn],
    literal: Callable[[Any, str], str],
    sql_type: Callable[[str], str],
) -> str:
    """The ``LEFT JOIN`` adding attached facet columns (``f.<column>``) by artifact id.

    ``literal(value, duckdb_type)`` and ``sql_type(duckdb_type)`` write values
    and types in the engine's dialect. Empty when nothing is attached; with
    no artifact ids, a typed empty relation, so the columns keep their types.
    """
    if not attach:
        return ""
    ids = sorted({aid for fc in attach for aid in fc.values})
    header = [qi("consist_artifact_id")] + [qi(fc.column) for fc in attach]
    if ids:
        rows = [
            "("
            + ", ".join(
                [literal(aid, "VARCHAR")]
                + [literal(fc.values.get(aid), fc.sql_type) for fc in attach]
            )
            + ")"
            for aid in ids
        ]
        facets = f"(VALUES {', '.join(rows)}) AS f({', '.join(header)})"
    else:
        cols = ", ".join(
            [f"CAST(NULL AS {sql_type('VARCHAR')}) AS consist_artifact_id"]
            + [f"CAST(NULL AS {sql_type(fc.sql_type)}) AS {qi(fc.column)}" for fc in attach]
        )
        facets = f"(SELECT {cols} WHERE false) AS f"
    return f" LEFT JOIN {facets} ON u.consist_artifact_id = f.consist_artifact_id"


def _literal(value: Any, sql_type: str) -> str:
    if value is None:
        return f"CAST(NULL AS {sql_type})"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS {sql_type})"
    if isinstance(value, float):
        if math.isnan(value):
            return "CAST('nan' AS DOUBLE)"
        if math.isinf(value):
            return "CAST('inf' AS DOUBLE)" if value > 0 else "CAST('-inf' AS DOUBLE)"
        return f"CAST({value!r} AS {sql_type})"
    return f"CAST({ql(str(value))} AS {sql_type})"


def _empty_system_select() -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {qi(c)}" for c, t in SYSTEM_COLUMNS.items())
    return f"SELECT {cols} WHERE false"

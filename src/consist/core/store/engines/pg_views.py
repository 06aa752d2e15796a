"""Views on PostgreSQL (team mode): SQL views over the server's ``global_tables``.

:class:`PgViewStore` is :class:`~consist.core.store.view_store.ViewStore`
for a PostgreSQL store: the same methods, called by the same
:class:`~consist.core.hot.views.ViewFactory`, so ``view(Model)``,
``tracker.views.X``, ``create_view`` and ``create_grouped_view`` select the
same artifacts, apply the same filters and give the same columns. The SQL
differs where DuckDB's has no PostgreSQL equivalent:

* ``UNION ALL BY NAME`` becomes ``UNION ALL`` of one ``SELECT`` per hot table
  with an explicit column list: the union's columns in order of first
  appearance, a column a table lacks is ``NULL`` of the column's type there,
  and a column whose type differs between tables is read as ``text`` in all
  of them (DuckDB would pick a common type).
* ``SELECT * EXCLUDE (...)`` becomes the explicit list of the kept columns.
* ``CREATE OR REPLACE VIEW`` cannot change a PostgreSQL view's columns, so a
  view is replaced by ``DROP VIEW IF EXISTS`` + ``CREATE VIEW`` in one
  transaction (readers see the old or the new view, never none).
* The model columns, facet columns and empty views are typed with
  :func:`~consist.core.store.engines.pg_hot.pg_type` of their DuckDB types.

Views are created in the store's schema (the session's ``current_schema()``),
next to the metadata tables, whose names they may not take.

File-backed artifacts: a DuckDB view reads the files of artifacts that were
never ingested in place (``read_parquet`` ...). The server cannot read the
client's files, so on PostgreSQL a view covers ingested artifacts only; the
tracker leaves the others out with a warning naming them and the fix
(``tracker.ingest(artifact)``), and lists them in ``ViewResult.skipped``
(see :mod:`consist.core.facade.views`). :meth:`PgViewStore.create_view`
refuses file sources outright.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.engines.pg_hot import pg_type
from consist.core.store.hot_tables import GLOBAL_SCHEMA, table_name_for
from consist.core.store.schema_fields import SYSTEM_COLUMNS
from consist.core.store.schema_store import ViewSource
from consist.core.store.sql_text import quote_ident as qi
from consist.core.store.sql_text import quote_literal as ql
from consist.core.store.view_store import FacetColumn, HotRows, projection

_HOT_COLUMNS_SQL = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY c.relname, a.attnum"
)


class PgViewStore:
    """Creates views in the PostgreSQL store's schema over ``global_tables``.

    Parameters
    ----------
    connections:
        The store's :class:`~consist.core.store.engines.postgres.PostgresConnectionManager`.
    """

    def __init__(self, connections: Any) -> None:
        self.connections = connections
        self._types: dict[str, dict[str, str]] = {}

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep one session for the duration (the calls made inside share it)."""
        with self.connections.connection():
            yield

    def check_view_name(self, view_name: str, if_exists: str) -> None:
        """Check that a view may be created under ``view_name`` (see ``ViewStore``).

        Raises
        ------
        ValueError
            If the name is a table's, or a view's with ``if_exists="error"``.
        ReadOnlyStoreError
            On a read-only store (checked first, so nothing else is done).
        """
        if self.connections.read_only:
            raise ReadOnlyStoreError.refusing(f"create view {view_name!r}")
        with self.connections.connection() as con:
            rows = con.raw.execute(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND lower(table_name) = lower(%s)",
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

    def locate_hot(
        self, ids: Sequence[str], ledger: Mapping[str, str], concept_key: str | None
    ) -> HotRows:
        """Find the hot rows of the selected artifacts (see ``ViewStore.locate_hot``)."""
        with self.connections.connection() as con:
            raw = con.raw
            types: dict[str, dict[str, str]] = {}
            for table, column, kind in raw.execute(_HOT_COLUMNS_SQL, [GLOBAL_SCHEMA]).fetchall():
                types.setdefault(table, {})[column] = kind
            types = {t: cols for t, cols in types.items() if "consist_artifact_id" in cols}
            self._types = types
            tables = {t: list(cols) for t, cols in types.items()}
            hot_of = self._hot_index(raw, tables, ids, ledger)
            concept_table = _concept_table(tables, concept_key)
            if concept_table is not None:
                for aid in self._ids_in(raw, concept_table, ledger):
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
        """Create (or replace) ``view_name`` over hot rows (see ``ViewStore.create_view``).

        Raises
        ------
        ValueError
            If ``cold`` names files: the server cannot read them (ingest them).
        ReadOnlyStoreError
            On a read-only store (``read_only=True``).
        """
        if self.connections.read_only:
            raise ReadOnlyStoreError.refusing(f"create view {view_name!r}")
        if cold:
            raise ValueError(
                f"view {view_name!r}: a PostgreSQL store's views cannot read files "
                f"({cold[0][1]}); ingest the artifacts with tracker.ingest(artifact)"
            )
        parts: list[str] = []
        union_types: dict[str, str] = {}
        if hot is not None:
            parts, union_types = self._hot_parts(hot, ids)
        if parts:
            union = "\nUNION ALL\n".join(parts)
        else:
            union_types = {c: pg_type(t) for c, t in SYSTEM_COLUMNS.items()}
            union = (
                "SELECT "
                + ", ".join(f"CAST(NULL AS {t}) AS {qi(c)}" for c, t in union_types.items())
                + " WHERE false"
            )
            if columns is None and empty_columns:
                columns = empty_columns
        select = projection(
            union,
            list(union_types),
            columns,
            attach,
            include_system_columns,
            literal=_literal,
            sql_type=pg_type,
            star=False,
        )
        with self.connections.transaction() as tx:
            tx.raw.execute(f"DROP VIEW IF EXISTS {qi(view_name)}")
            tx.raw.execute(f"CREATE VIEW {qi(view_name)} AS {select}")
            described = tx.raw.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                [view_name],
            ).fetchall()
        return select, [r[0] for r in described]

    # -- internals ------------------------------------------------------------

    def _hot_parts(self, hot: HotRows, ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        wanted = set(ids)
        by_table: dict[str, list[str]] = {}
        for aid, table in hot.hot_of.items():
            if aid in wanted and table != hot.concept_table:
                by_table.setdefault(table, []).append(aid)
        if hot.concept_table is not None:
            by_table[hot.concept_table] = []  # the whole table
        order = sorted(by_table)
        union_types: dict[str, str] = {}
        for table in order:
            for column, kind in self._types.get(table, {}).items():
                if column.startswith("_dlt_"):
                    continue
                if column not in union_types:
                    union_types[column] = kind
                elif union_types[column] != kind:
                    union_types[column] = "text"  # tables disagree: read as text
        parts = []
        for table in order:
            present = self._types.get(table, {})
            items = []
            for column, kind in union_types.items():
                if column not in present:
                    items.append(f"CAST(NULL AS {kind}) AS {qi(column)}")
                elif present[column] != kind:
                    items.append(f"CAST({qi(column)} AS {kind}) AS {qi(column)}")
                else:
                    items.append(qi(column))
            sql = f"SELECT {', '.join(items)} FROM {_hot_table(table)}"
            if table != hot.concept_table:
                id_list = ", ".join(ql(a) for a in sorted(by_table[table]))
                sql += f" WHERE CAST(consist_artifact_id AS text) IN ({id_list})"
            parts.append(sql)
        return parts, union_types

    @staticmethod
    def _ids_in(raw: Any, table: str, ledger: Mapping[str, str]) -> list[str]:
        known = [aid for aid, t in ledger.items() if t.lower() == table.lower()]
        if known:
            return known
        rows = raw.execute(
            f"SELECT DISTINCT CAST(consist_artifact_id AS text) FROM {_hot_table(table)} "
            "WHERE consist_artifact_id IS NOT NULL"
        ).fetchall()
        return [str(r[0]) for r in rows]

    @staticmethod
    def _hot_index(
        raw: Any, tables: Mapping[str, list[str]], ids: Sequence[str], ledger: Mapping[str, str]
    ) -> dict[str, str]:
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
            rows = raw.execute(
                f"SELECT DISTINCT CAST(consist_artifact_id AS text) FROM {_hot_table(table)} "
                "WHERE CAST(consist_artifact_id AS text) = ANY(%s::text[])",
                [list(ids)],
            ).fetchall()
            for (aid,) in rows:
                found.setdefault(aid, table)
        return found


def _hot_table(table: str) -> str:
    return f"{qi(GLOBAL_SCHEMA)}.{qi(table)}"


def _concept_table(tables: Mapping[str, list[str]], key: str | None) -> str | None:
    if key is None:
        return None
    by_lower = {t.lower(): t for t in tables}
    for candidate in (key, table_name_for(key)):
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None


def _literal(value: Any, duck: str) -> str:
    kind = pg_type(duck)
    if value is None:
        return f"CAST(NULL AS {kind})"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS {kind})"
    if isinstance(value, float):
        if math.isnan(value):
            return f"CAST('NaN' AS {kind})"
        if math.isinf(value):
            return f"CAST('{'Infinity' if value > 0 else '-Infinity'}' AS {kind})"
        return f"CAST({value!r} AS {kind})"
    return f"CAST({ql(str(value))} AS {kind})"

"""Hot data on PostgreSQL (team mode): ingested rows in the server's ``global_tables``.

:class:`PgHotStore` is :class:`~consist.core.store.hot_store.HotStore` for a
PostgreSQL store: same methods, same conventions
(:mod:`consist.core.store.hot_tables`: one table per schema ``__tablename__``
or artifact key, the provenance columns, re-ingest replaces an artifact's
rows, new columns are added, column types never change, the
``ingested_artifact`` ledger and the artifact's ``is_ingested`` metadata).
What differs is where rows are read and written:

* **Reading and checking, in the client.** The source (the artifact's
  parquet/csv/json file, a DataFrame or Arrow table, rows staged by dlt) is
  opened by DuckDB on a private in-memory connection, exactly as on the
  DuckDB engine, and checked there with the same queries
  (:mod:`consist.core.store.hot_validation`): a strict schema, then the
  existing table's column types. Nothing reaches the server before the
  checks pass.
* **Loading, with COPY.** DuckDB runs the ``SELECT`` of the rows to load
  (casts and provenance columns included) and psycopg 3 streams them with
  ``COPY global_tables.<t> (...) FROM STDIN``: in PostgreSQL's binary format
  when every column's type allows it (:mod:`.pg_copy`: integers, floats,
  booleans, text, bytea, jsonb, dates, timestamps), encoded from Arrow
  batches of 65,536 rows with numpy; otherwise (a numeric, time, interval
  or uuid column) as CSV that DuckDB writes to a temporary file on every
  core, streamed in 1 MiB chunks. Both give the same rows (tested). No row
  goes through Python code of its own, no ``INSERT`` per row. The table's
  creation or new columns, the delete of the artifact's earlier rows, the
  COPY, the ledger row and the artifact's metadata are one transaction,
  which first takes a transaction advisory lock on the table's name, so two
  ingests into one table (from any process) take turns from the column
  check to the commit.
* **Reading back.** :meth:`PgHotStore.read_artifact_rows` (``load`` of an
  ingested artifact whose file is gone) streams ``COPY (SELECT ...) TO
  STDOUT (FORMAT csv)`` into a temporary file that DuckDB reads with the
  columns' types, into a ``pyarrow.Table``.

Types. Each DuckDB type is stored as its nearest PostgreSQL type
(:func:`pg_type`): BOOLEAN, SMALLINT (TINYINT, UTINYINT), INTEGER
(USMALLINT), BIGINT (UINTEGER), NUMERIC(20,0) (UBIGINT), NUMERIC(39,0)
(HUGEINT, UHUGEINT), REAL, DOUBLE PRECISION, NUMERIC(p,s) (DECIMAL), TEXT
(VARCHAR, ENUM, BIT and anything unlisted), BYTEA (BLOB), DATE, TIME, TIMETZ,
TIMESTAMP, TIMESTAMPTZ, INTERVAL, UUID, JSONB (JSON). Differences from the
DuckDB engine: TIMESTAMP_NS is rounded to microseconds (PostgreSQL's
precision); nested values (LIST, ARRAY, STRUCT, MAP, UNION) are stored as
JSONB (their JSON text), so reading them back gives JSON text, not lists or
structs; the unsigned and 128-bit integers become NUMERIC (read back as
decimals). The provenance columns are TEXT, TEXT, INTEGER, INTEGER.

dlt. The spec says ingestion goes through dlt. As on DuckDB
(:mod:`consist.core.hot.ingest`), files and in-memory tables do not: DuckDB
reads them natively. Iterables of dict rows are still loaded by dlt, into
its local DuckDB staging file, which this module then reads like any other
source and COPYs to the server; dlt's own ``postgres`` destination is not
used: it needs psycopg2 (Consist's PostgreSQL engine is psycopg 3, and a
second driver would be a second dependency doing the same job), it would
create tables and ``_dlt_*`` bookkeeping tables of its own beside
``global_tables`` instead of following these conventions (provenance
columns, ledger, replace on re-ingest), and it inserts through its own
batched statements rather than one COPY.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.engines import pg_copy
from consist.core.store.hot_store import (
    GLOBAL_SCHEMA,
    PROVENANCE_COLUMNS,
    ColumnSpec,
    HotStore,
    IngestStats,
    Provenance,
    RowSource,
    _open_source,
    ingest_meta,
    ledger_row,
    ledger_upsert,
    source_select,
)
from consist.core.store.hot_validation import (
    check_against_table,
    text_columns,
)
from consist.core.store.profile_scan import stats_from_row
from consist.core.store.schema_fields import (
    ProfileObservation,
    is_system_column,
    profile_from_columns,
)
from consist.core.store.schema_store import SchemaStore
from consist.core.store.sql_text import quote_ident, quote_literal, sql_literal

_CHUNK = 1 << 20
_BATCH_ROWS = 65_536  # rows per Arrow batch encoded for binary COPY
_SCALAR = re.compile(
    r"^(SMALLINT|INTEGER|BIGINT|HUGEINT|FLOAT|DOUBLE|DECIMAL.*|VARCHAR|DATE|TIME|TIMESTAMP.*)$"
)
_NESTED = re.compile(r"(\[\d*\]$)|^(STRUCT|MAP|UNION)\b", re.IGNORECASE)
_DUCK_TO_PG = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "UTINYINT": "smallint",
    "SMALLINT": "smallint",
    "USMALLINT": "integer",
    "INTEGER": "integer",
    "UINTEGER": "bigint",
    "BIGINT": "bigint",
    "UBIGINT": "numeric(20,0)",
    "HUGEINT": "numeric(39,0)",
    "UHUGEINT": "numeric(39,0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "BLOB": "bytea",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIME WITH TIME ZONE": "time with time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP_S": "timestamp without time zone",
    "TIMESTAMP_MS": "timestamp without time zone",
    "TIMESTAMP_NS": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "JSON": "jsonb",
}
_PG_TO_DUCK = {
    "boolean": "BOOLEAN",
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "bytea": "BLOB",
    "date": "DATE",
    "time without time zone": "TIME",
    "time with time zone": "TIME WITH TIME ZONE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "interval": "INTERVAL",
    "uuid": "UUID",
    "jsonb": "JSON",
    "json": "JSON",
}


def pg_type(duck_type: str) -> str:
    """The PostgreSQL column type storing a DuckDB type (see the module docstring).

    Parameters
    ----------
    duck_type:
        A DuckDB type as ``DESCRIBE`` prints it (``"BIGINT"``,
        ``"DECIMAL(18,3)"``, ``"INTEGER[]"``, ``"STRUCT(a INTEGER)"``...).

    Returns
    -------
    str
        The PostgreSQL type, as ``format_type`` prints it.
    """
    text = duck_type.strip()
    upper = text.upper()
    if _NESTED.search(upper):
        return "jsonb"
    if upper.startswith("DECIMAL"):
        match = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", upper)
        return f"numeric({match.group(1)},{match.group(2)})" if match else "numeric"
    if upper.startswith("VARCHAR"):
        return "text"
    return _DUCK_TO_PG.get(upper, "text")


def duck_type(pg: str) -> str:
    """The DuckDB type that reads a PostgreSQL column's values back (inverse of :func:`pg_type`)."""
    text = pg.strip().lower()
    match = re.match(r"numeric\((\d+),(\d+)\)", text.replace(" ", ""))
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if precision <= 38:
            return f"DECIMAL({precision},{scale})"
        return "HUGEINT" if scale == 0 else "DOUBLE"
    if text == "numeric":
        return "DOUBLE"
    if text.startswith("character varying"):
        return "VARCHAR"
    return _PG_TO_DUCK.get(text, "VARCHAR")


def _value(expr: str, source_type: str, target: str) -> str:
    """DuckDB SQL giving the value of ``expr`` that is stored in a ``target`` column."""
    if target == "jsonb":
        if source_type.upper() == "JSON":
            return f"CAST({expr} AS VARCHAR)"
        return f"CAST(to_json({expr}) AS VARCHAR)"
    if source_type.upper() == "TIMESTAMP_NS":
        return f"CAST({expr} AS TIMESTAMP)"
    return expr


def _as_text(value: str, target: str) -> str:
    """DuckDB SQL rendering a :func:`_value` as the CSV text PostgreSQL reads into ``target``."""
    if target == "bytea":
        return f"'\\x' || lower(hex({value}))"
    return value


def table_lock_key(table: str) -> int:
    """The 64-bit advisory lock key serializing ingests into ``global_tables.<table>``."""
    digest = hashlib.blake2b(f"consist-ingest:{GLOBAL_SCHEMA}.{table}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class PgHotStore(HotStore):
    """Ingested tables in the PostgreSQL server's ``global_tables`` and their ledger.

    Parameters
    ----------
    connections:
        The PostgreSQL store's connection manager (shared with its metadata store).
    before_write:
        Called before an ingest writes (the metadata store's ``flush``).

    Attributes
    ----------
    binary_copy:
        Load with binary COPY when every column's type allows it
        (:mod:`.pg_copy`); False: always CSV (both give the same rows).
    """

    binary_copy: bool = True

    # -- writes ---------------------------------------------------------------

    def ingest(
        self,
        source: RowSource,
        table: str,
        provenance: Provenance,
        *,
        columns: Sequence[ColumnSpec] | None = None,
        schema_label: str | None = None,
        artifact_key: str,
        mode: str,
        source_hash: str | None = None,
    ) -> IngestStats:
        """Validate the rows in the client, then COPY them into ``global_tables.<table>``.

        Same parameters, result and errors as :meth:`HotStore.ingest`; see the
        module docstring for how the rows travel and how types are mapped.

        Raises
        ------
        ReadOnlyStoreError
            On a read-only store (``read_only=True``), before anything is read.
        """
        import duckdb

        if self.connections.read_only:
            raise ReadOnlyStoreError.refusing(f"ingest into {GLOBAL_SCHEMA}.{table}")
        if self._before_write is not None:
            self._before_write()
        local = duckdb.connect()
        try:
            with (
                _open_source(local, source, text_columns(columns)) as from_sql,
                tempfile.TemporaryDirectory(prefix="consist-pg-ingest-") as tmp,
            ):
                select = source_select(local, from_sql, columns, schema_label)
                csv_path = os.path.join(tmp, "rows.csv")
                with self.connections.transaction() as tx:
                    raw = tx.raw
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", [table_lock_key(table)])
                    existing = _columns(raw, table)
                    if existing:
                        check_against_table(
                            local,
                            from_sql,
                            select,
                            [(name, duck_type(kind)) for name, kind in existing],
                            table,
                        )
                    plan = _plan(select, existing, provenance)
                    kinds = [kind for _, _, kind in plan.items]
                    binary = self.binary_copy and pg_copy.supports(kinds)
                    if not binary:
                        local.execute(
                            f"COPY ({plan.select(from_sql, binary=False)}) TO "
                            f"{sql_literal(csv_path)} (FORMAT csv, HEADER false)"
                        )
                    target = _qualified(table)
                    raw.execute(f"CREATE SCHEMA IF NOT EXISTS {GLOBAL_SCHEMA}")
                    replaced = 0
                    if not existing:
                        defs = ", ".join(f"{quote_ident(n)} {t}" for n, t in plan.new_columns)
                        raw.execute(f"CREATE TABLE {target} ({defs})")
                    else:
                        for name, kind in plan.new_columns:
                            raw.execute(
                                f"ALTER TABLE {target} ADD COLUMN {quote_ident(name)} {kind}"
                            )
                        replaced = raw.execute(
                            f"DELETE FROM {target} WHERE consist_artifact_id = %s",
                            [provenance.artifact_id],
                        ).rowcount
                    names = [name for _, name, _ in plan.items]
                    if binary:
                        reader = local.sql(plan.select(from_sql, binary=True)).to_arrow_reader(
                            _BATCH_ROWS
                        )
                        rows = _copy_binary(raw, target, names, kinds, reader)
                    else:
                        rows = _copy_in(raw, target, names, csv_path)
                    data_columns = tuple(name for _, name, _ in select)
                    raw.execute(
                        ledger_upsert("%s"),
                        ledger_row(
                            provenance,
                            table,
                            artifact_key,
                            rows,
                            mode,
                            source_hash,
                            schema_label,
                            data_columns,
                        ),
                    )
                    patch_artifact_meta(
                        raw, provenance.artifact_id, ingest_meta(table, rows, provenance.run_id)
                    )
        finally:
            local.close()
        existing_names = {name.lower() for name, _ in existing}
        return IngestStats(
            table=table,
            rows=rows,
            replaced_rows=max(int(replaced or 0), 0),
            columns=data_columns,
            created_table=not existing,
            added_columns=tuple(
                name for _, name, _ in select if existing and name.lower() not in existing_names
            ),
        )

    def annotate_artifact(self, artifact_id: uuid.UUID | str, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into the stored metadata of an artifact and of its run links.

        As on DuckDB (``json_merge_patch``), a key whose value is None is
        removed; other top-level keys are set (a nested value replaces the
        stored one as a whole).
        """
        if self.connections.read_only:
            raise ReadOnlyStoreError.refusing("annotate an artifact")
        if self._before_write is not None:
            self._before_write()
        with self.connections.transaction() as tx:
            patch_artifact_meta(tx.raw, str(artifact_id), patch)

    # -- reads ----------------------------------------------------------------

    def read_artifact_rows(
        self,
        artifact_id: uuid.UUID | str,
        *,
        key: str | None = None,
        include_provenance: bool = False,
        columns: Sequence[str] | None = None,
    ) -> Any:
        """An artifact's ingested rows as a ``pyarrow.Table``, or None if not ingested.

        Same parameters and errors as :meth:`HotStore.read_artifact_rows`;
        the rows come from the server with ``COPY ... TO STDOUT`` and are
        typed by :func:`duck_type` of their PostgreSQL columns.
        """
        import duckdb

        found = self._rows_wanted(artifact_id, key, include_provenance, columns)
        if found is None:
            return None
        record, names = found
        with tempfile.TemporaryDirectory(prefix="consist-pg-read-") as tmp:
            path = os.path.join(tmp, "rows.csv")
            with self.connections.connection() as con:
                table_types = {n.lower(): (n, t) for n, t in _columns(con.raw, record.table_name)}
                if not table_types:
                    return None
                if not names:
                    names = [n for n, _ in table_types.values()]
                picked = [table_types[n.lower()] for n in names if n.lower() in table_types]
                outputs = [
                    f"encode({quote_ident(n)}, 'hex')" if t == "bytea" else quote_ident(n)
                    for n, t in picked
                ]
                sql = (
                    f"COPY (SELECT {', '.join(outputs)} FROM {_qualified(record.table_name)} "
                    "WHERE consist_artifact_id = %s) TO STDOUT (FORMAT csv)"
                )
                with (
                    open(path, "wb") as out,
                    con.raw.cursor() as cur,
                    cur.copy(sql, [str(artifact_id)]) as copy,
                ):
                    for chunk in copy:
                        out.write(chunk)
            local = duckdb.connect()
            try:
                spec = ", ".join(
                    f"{quote_literal(f'c{i}')}: "
                    f"{quote_literal('VARCHAR' if t == 'bytea' else duck_type(t))}"
                    for i, (_, t) in enumerate(picked)
                )
                items = ", ".join(
                    (f"unhex(c{i})" if t == "bytea" else f"c{i}") + f" AS {quote_ident(n)}"
                    for i, (n, t) in enumerate(picked)
                )
                return local.sql(
                    f"SELECT {items} FROM read_csv({sql_literal(path)}, header = false, "
                    f"columns = {{{spec}}}, allow_quoted_nulls = false, auto_detect = false)"
                ).to_arrow_table()
            finally:
                local.close()

    @staticmethod
    def _table_columns(con: Any, table: str) -> list[tuple[str, str]]:
        return _columns(con.raw, table)


# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #


class _Plan:
    """The DuckDB select items and the columns to create."""

    def __init__(self) -> None:
        # (DuckDB expression of the stored value, column name, PostgreSQL type)
        self.items: list[tuple[str, str, str]] = []
        self.new_columns: list[tuple[str, str]] = []  # (name, PostgreSQL type)

    def select(self, from_sql: str, *, binary: bool) -> str:
        """The ``SELECT`` of the rows to load: values (binary COPY) or CSV text."""
        exprs = [v if binary else _as_text(v, kind) for v, _, kind in self.items]
        return f"SELECT {', '.join(exprs)} FROM {from_sql}"


def _plan(
    select: Sequence[tuple[str, str, str]],
    existing: Sequence[tuple[str, str]],
    provenance: Provenance,
) -> _Plan:
    plan = _Plan()
    table_types = {name.lower(): (name, kind) for name, kind in existing}
    for expr, name, source_type in select:
        found = table_types.get(name.lower())
        if found is None:
            target = pg_type(source_type)
            plan.new_columns.append((name, target))
            plan.items.append((_value(expr, source_type, target), name, target))
            continue
        column, target = found
        wanted = pg_type(source_type)
        if wanted != target:
            cast_to = duck_type(target)
            expr, source_type = f"CAST({expr} AS {cast_to})", cast_to
        plan.items.append((_value(expr, source_type, target), column, target))
    values = (provenance.run_id, provenance.artifact_id, provenance.year, provenance.iteration)
    for value, (name, duck) in zip(values, PROVENANCE_COLUMNS, strict=True):
        found = table_types.get(name)
        target = pg_type(duck) if found is None else found[1]
        if found is None:
            plan.new_columns.append((name, target))
        plan.items.append((f"CAST({sql_literal(value)} AS {duck})", name, target))
    return plan


def _qualified(table: str) -> str:
    return f"{quote_ident(GLOBAL_SCHEMA)}.{quote_ident(table)}"


def _columns(raw: Any, table: str) -> list[tuple[str, str]]:
    """``(name, PostgreSQL type)`` of a ``global_tables`` table's columns, in order."""
    rows = raw.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND lower(c.relname) = lower(%s) AND c.relkind = 'r' "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [GLOBAL_SCHEMA, table],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _copy_binary(
    raw: Any, target: str, names: Sequence[str], kinds: Sequence[str], reader: Any
) -> int:
    """Stream Arrow batches into ``target`` with binary COPY; the number of rows copied."""
    sql = f"COPY {target} ({', '.join(quote_ident(n) for n in names)}) FROM STDIN (FORMAT binary)"
    with raw.cursor() as cur:
        with cur.copy(sql) as copy:
            copy.write(pg_copy.HEADER)
            for batch in reader:
                copy.write(pg_copy.encode_batch(batch, kinds))
            copy.write(pg_copy.TRAILER)
        return int(cur.rowcount)


def _copy_in(raw: Any, target: str, names: Sequence[str], csv_path: str) -> int:
    """Stream a CSV file into ``target`` with COPY; the number of rows copied."""
    sql = f"COPY {target} ({', '.join(quote_ident(n) for n in names)}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cur:
        with cur.copy(sql) as copy, open(csv_path, "rb") as source:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                copy.write(chunk)
        return int(cur.rowcount)


def patch_artifact_meta(raw: Any, artifact_id: str, patch: dict[str, Any]) -> None:
    """Merge ``patch`` into ``artifact.meta`` and the links' (JSON text columns).

    Keys whose value is None are removed, others set, as ``json_merge_patch``
    does at the top level.
    """
    keep = {k: v for k, v in patch.items() if v is not None}
    drop = [k for k, v in patch.items() if v is None]
    text = json.dumps(keep, default=str, sort_keys=True)
    for table, column in (("artifact", "id"), ("run_artifact_link", "artifact_id")):
        raw.execute(
            f"UPDATE {table} SET meta = ((coalesce(meta, '{{}}')::jsonb || %s::jsonb) "
            f"- %s::text[])::text WHERE {column} = %s",
            [text, drop, artifact_id],
        )


class PgSchemaStore(SchemaStore):
    """:class:`~consist.core.store.schema_store.SchemaStore` on a PostgreSQL store.

    Only :meth:`profile_table` differs: the column types of an ingested
    table are read from the server's catalog and named in DuckDB's
    vocabulary (:func:`duck_type`), so a profile of ingested rows is the same
    on both engines, and the statistics are computed with PostgreSQL's
    aggregates (``bool_and`` / ``bool_or`` for booleans, text for UUIDs).
    """

    def profile_table(
        self, schema: str, table: str, *, artifact_id: str | None = None
    ) -> ProfileObservation:
        """A ``"duckdb"`` observation of a table of the server (see ``SchemaStore.profile_table``).

        Raises
        ------
        KeyError
            If the table does not exist.
        """
        with self.connections.connection() as con:
            raw = con.raw
            described = raw.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                [schema, table],
            ).fetchall()
            if not described:
                raise KeyError(f"no table {schema}.{table} in the store")
            columns = [(r[0], duck_type(r[1]), bool(r[2])) for r in described]
            names = {name for name, _, _ in columns}
            source = f"{quote_ident(schema)}.{quote_ident(table)}"
            params: list[Any] = []
            if artifact_id is not None and "consist_artifact_id" in names:
                source += " WHERE consist_artifact_id = %s"
                params.append(str(artifact_id))
            data = [(n, t) for n, t, _ in columns if not is_system_column(n)]
            parts = ["count(*)"]
            for name, kind in data:
                q = quote_ident(name)
                parts.append(f"count(*) - count({q})")
                if kind == "BOOLEAN":
                    parts += [f"bool_and({q})::text", f"bool_or({q})::text"]
                elif kind == "UUID":
                    parts += [f"min({q}::text)", f"max({q}::text)"]
                elif _SCALAR.match(kind):
                    parts += [f"min({q})::text", f"max({q})::text"]
                else:
                    parts += ["NULL", "NULL"]
            row = raw.execute(f"SELECT {', '.join(parts)} FROM {source}", params).fetchone()
        n_rows, stats = stats_from_row(data, row)
        return profile_from_columns(
            columns, source="duckdb", n_rows=n_rows, stats=stats, table_name=f"{schema}.{table}"
        )

"""All SQL for schema profiles, their links to artifacts, and view sources.

Tables (migration 5, see :mod:`consist.core.store.schema`):

* ``schema_profile``: one row per distinct layout, keyed by its digest
  (:func:`consist.core.store.schema_fields.schema_digest`): the ordered field list
  as JSON and the field names (for compatible-schema lookups).
* ``artifact_schema``: artifact -> schema links, one per ``(artifact, source)``
  with ``source`` in ``"file"`` / ``"duckdb"`` / ``"user_provided"``. Each link
  keeps what was observed in that artifact (row count, rows sampled,
  per-column statistics), its content identity (``content_id``, ``hash``:
  used by ``profile_file_schema="if_changed"``) and, for ``"duckdb"`` links,
  the profiled table.

Also here: the metadata queries behind hybrid and grouped views (selecting
artifacts by key, schema, facet predicates, drivers and run filters, and the
typed facet values attached to a view). The view DDL itself is built by
:mod:`consist.core.store.view_store`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consist.core.store.connection import all_cores
from consist.core.store.hot_layout import artifact_rows_source
from consist.core.store.hot_tables import GLOBAL_SCHEMA
from consist.core.store.profile_scan import column_stats
from consist.core.store.rows import json_load, to_db_time
from consist.core.store.schema_fields import (
    ProfileObservation,
    SchemaProfile,
    is_system_column,
    profile_from_columns,
)
from consist.core.store.sql_text import quote_ident

_LINK_COLUMNS = (
    "l.artifact_id, l.schema_id, l.source, l.content_id, l.hash, l.table_name, "
    "l.n_rows, l.sampled_rows, l.stats, l.created_at"
)


@dataclass(frozen=True)
class SchemaLink:
    """One artifact -> schema link (a row of ``artifact_schema``)."""

    artifact_id: str
    schema_id: str
    source: str
    content_id: str | None
    hash: str | None
    table_name: str | None
    n_rows: int | None
    sampled_rows: int | None
    stats: dict[str, dict[str, Any]]
    created_at: datetime | None


def _link_from_row(row: Sequence[Any]) -> SchemaLink:
    return SchemaLink(
        artifact_id=str(row[0]),
        schema_id=row[1],
        source=row[2],
        content_id=None if row[3] is None else str(row[3]),
        hash=row[4],
        table_name=row[5],
        n_rows=row[6],
        sampled_rows=row[7],
        stats=json_load(row[8]),
        created_at=row[9],
    )


@dataclass(frozen=True)
class KVPredicate:
    """A parsed facet predicate ``[namespace.]key <op> value``.

    Attributes
    ----------
    namespace:
        ``artifact_kv.namespace`` to match, or None for any.
    key:
        Flattened facet key.
    op:
        ``"="``, ``">="`` or ``"<="``.
    value:
        Typed value: str, int/float, bool or None.
    text:
        The raw right-hand side (a numeric ``=`` also matches it as a string).
    """

    namespace: str | None
    key: str
    op: str
    value: Any
    text: str


@dataclass(frozen=True)
class ViewSource:
    """An artifact selected for a view, with its creator run's year/iteration."""

    artifact_id: str
    key: str
    uri: str
    driver: str
    table_path: str | None
    array_path: str | None
    run_id: str | None
    year: int | None
    iteration: int | None
    meta: dict[str, Any]


RUN_FILTER_COLUMNS = {
    "run_id": "id",
    "parent_run_id": "parent_run_id",
    "model": "model_name",
    "status": "status",
    "year": "year",
    "iteration": "iteration",
}


class SchemaStore:
    """Domain-level access to schema profiles, their links, and view sources.

    Parameters
    ----------
    connections:
        The store's :class:`~consist.core.store.connection.DuckDBConnectionManager`.
    before_read:
        Called before reads (commit the metadata store's queued writes, so
        artifacts logged a moment ago are visible).
    """

    def __init__(self, connections: Any, *, before_read: Callable[[], None] | None = None) -> None:
        self.connections = connections
        self._before_read = before_read or (lambda: None)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._before_read()
        with self.connections.connection() as con:
            return con.execute(sql, list(params)).fetchall()

    # -- writes ---------------------------------------------------------------

    def record(
        self,
        observations: Iterable[tuple[ProfileObservation, str | uuid.UUID | None]],
        *,
        content_id: str | uuid.UUID | None = None,
        hash: str | None = None,
    ) -> list[str]:
        """Store profiles (deduplicated) and link them to artifacts, in one transaction.

        Parameters
        ----------
        observations:
            ``(observation, artifact id or None)`` pairs; an observation
            without an artifact only stores its profile.
        content_id, hash:
            Content identity of the artifacts (kept on the links).

        Returns
        -------
        list[str]
            The schema id of each observation.
        """
        now = to_db_time(datetime.now(UTC))
        ids = []
        with self.connections.transaction() as con:
            for obs, artifact_id in observations:
                profile = obs.profile
                schema_id = profile.id
                ids.append(schema_id)
                con.execute(
                    "INSERT INTO schema_profile (id, field_names, fields, n_fields, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    [
                        schema_id,
                        profile.field_names,
                        json.dumps(profile.to_list(), sort_keys=True),
                        len(profile.fields),
                        now,
                    ],
                )
                if artifact_id is None:
                    continue
                con.execute(
                    "INSERT INTO artifact_schema (artifact_id, schema_id, source, content_id, "
                    "hash, table_name, n_rows, sampled_rows, stats, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (artifact_id, source) DO UPDATE SET "
                    "schema_id = excluded.schema_id, content_id = excluded.content_id, "
                    "hash = excluded.hash, table_name = excluded.table_name, "
                    "n_rows = excluded.n_rows, sampled_rows = excluded.sampled_rows, "
                    "stats = excluded.stats, created_at = excluded.created_at",
                    [
                        str(artifact_id),
                        schema_id,
                        obs.source,
                        None if content_id is None else str(content_id),
                        hash,
                        obs.table_name,
                        obs.n_rows,
                        obs.sampled_rows,
                        json.dumps(obs.stats, sort_keys=True, default=str),
                        now,
                    ],
                )
        return ids

    # -- reads ----------------------------------------------------------------

    def get_profile(self, schema_id: str) -> SchemaProfile | None:
        """The stored profile with this id, or None."""
        rows = self._rows("SELECT fields FROM schema_profile WHERE id = ?", [schema_id])
        if not rows:
            return None
        fields = rows[0][0]
        return SchemaProfile.from_list(json.loads(fields) if isinstance(fields, str) else fields)

    def profile_field_names(self) -> dict[str, list[str]]:
        """``{schema id: field names}`` of every stored profile."""
        rows = self._rows("SELECT id, field_names FROM schema_profile ORDER BY created_at, id")
        return {r[0]: list(r[1] or []) for r in rows}

    def links_for_artifact(self, artifact_id: str | uuid.UUID) -> list[SchemaLink]:
        """Every schema link of an artifact (one per source)."""
        rows = self._rows(
            f"SELECT {_LINK_COLUMNS} FROM artifact_schema l WHERE l.artifact_id = ? "
            "ORDER BY l.created_at",
            [str(artifact_id)],
        )
        return [_link_from_row(r) for r in rows]

    def latest_link_for_schema(self, schema_id: str) -> tuple[SchemaLink, str | None] | None:
        """The newest link to ``schema_id`` and the key of its artifact (if stored)."""
        rows = self._rows(
            f"SELECT {_LINK_COLUMNS}, a.key FROM artifact_schema l "
            "LEFT JOIN artifact a ON a.id = l.artifact_id WHERE l.schema_id = ? "
            "ORDER BY l.created_at DESC LIMIT 1",
            [schema_id],
        )
        if not rows:
            return None
        return _link_from_row(rows[0][:-1]), rows[0][-1]

    def find_file_link(
        self, content_id: str | uuid.UUID | None, hash: str | None
    ) -> SchemaLink | None:
        """The newest ``"file"`` link for this content (``content_id``, else ``hash``).

        Links recorded without a content id (legacy rows) match by hash.
        """
        if content_id is None and not hash:
            return None
        if content_id is not None:
            where, params = "l.content_id = ?", [str(content_id)]
            if hash:
                where += " OR (l.content_id IS NULL AND l.hash = ?)"
                params.append(hash)
        else:
            where, params = "l.hash = ?", [hash]
        rows = self._rows(
            f"SELECT {_LINK_COLUMNS} FROM artifact_schema l WHERE l.source = 'file' AND "
            f"({where}) ORDER BY l.created_at DESC LIMIT 1",
            params,
        )
        return _link_from_row(rows[0]) if rows else None

    def artifact_summary(self, artifact_id: str | uuid.UUID) -> tuple[str, dict[str, Any]] | None:
        """``(key, meta)`` of a stored artifact, or None."""
        rows = self._rows("SELECT key, meta FROM artifact WHERE id = ?", [str(artifact_id)])
        if not rows:
            return None
        return rows[0][0], json_load(rows[0][1])

    def profile_table(
        self, schema: str, table: str, *, artifact_id: str | None = None
    ) -> ProfileObservation:
        """A ``"duckdb"`` observation of a table in the store.

        Types and nullability come from the catalog; the row count and
        statistics from the artifact's rows (``consist_artifact_id``) when
        ``artifact_id`` is given and the table has that column, else from the
        whole table. System columns are left out.

        Raises
        ------
        KeyError
            If the table does not exist.
        """
        with all_cores(self.connections), self.connections.connection() as con:
            described = con.execute(
                "SELECT column_name, data_type, is_nullable = 'YES' "
                "FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [schema, table],
            ).fetchall()
            if not described:
                raise KeyError(f"no table {schema}.{table} in the store")
            qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
            source = qualified
            params: list[Any] = []
            names = {r[0] for r in described}
            if artifact_id is not None and schema == GLOBAL_SCHEMA:
                source, params, _ = artifact_rows_source(con, table, str(artifact_id))
            elif artifact_id is not None and "consist_artifact_id" in names:
                source = f"(SELECT * FROM {qualified} WHERE consist_artifact_id = ?)"
                params.append(str(artifact_id))
            data_cols = [(r[0], r[1]) for r in described if not is_system_column(r[0])]
            n_rows, stats = column_stats(con, data_cols, source, params)
        return profile_from_columns(
            [(r[0], r[1], bool(r[2])) for r in described],
            source="duckdb",
            n_rows=n_rows,
            stats=stats,
            table_name=f"{schema}.{table}",
        )

    # -- view sources -----------------------------------------------------------

    def kv_namespaces(self) -> set[str]:
        """Namespaces present in ``artifact_kv``."""
        return {r[0] for r in self._rows("SELECT DISTINCT namespace FROM artifact_kv")}

    def select_sources(
        self,
        *,
        key: str | None = None,
        schema_name: str | None = None,
        schema_ids: Sequence[str] | None = None,
        drivers: Sequence[str] | None = None,
        predicates: Sequence[KVPredicate] = (),
        run_filters: Mapping[str, Any] | None = None,
    ) -> list[ViewSource]:
        """Artifacts matching every given selector, oldest first.

        Parameters
        ----------
        key:
            The artifact's key.
        schema_name:
            With ``key``: also select artifacts whose ``meta["schema_name"]``
            is this (logged with ``schema=`` under another key).
        schema_ids:
            Linked (any source) to one of these schemas.
        drivers:
            One of these drivers.
        predicates:
            Facet predicates on ``artifact_kv`` (all must hold).
        run_filters:
            ``{run_id, parent_run_id, model, status, year, iteration}``
            matched against a run that created the artifact or logged it as
            an output (so a cache-hit run selects the outputs it reused).
        """
        clauses: list[str] = []
        params: list[Any] = []
        if key is not None and schema_name is not None:
            clauses.append("(a.key = ? OR json_extract_string(a.meta, '$.schema_name') = ?)")
            params.extend([key, schema_name])
        elif key is not None:
            clauses.append("a.key = ?")
            params.append(key)
        if schema_ids is not None:
            clauses.append(
                "a.id IN (SELECT artifact_id FROM artifact_schema "
                "WHERE schema_id IN (SELECT unnest(?::VARCHAR[])))"
            )
            params.append(list(schema_ids))
        if drivers:
            clauses.append("a.driver IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(drivers))
        for pred in predicates:
            sql, values = _predicate_sql(pred)
            clauses.append(f"a.id IN (SELECT artifact_id FROM artifact_kv WHERE {sql})")
            params.extend(values)
        if run_filters:
            conds = []
            for name, value in run_filters.items():
                conds.append(f"fr.{RUN_FILTER_COLUMNS[name]} = ?")
                params.append(value)
            clauses.append(
                "EXISTS (SELECT 1 FROM run fr WHERE (fr.id = a.run_id OR fr.id IN "
                "(SELECT run_id FROM run_artifact_link WHERE artifact_id = a.id "
                f"AND direction = 'output')) AND {' AND '.join(conds)})"
            )
        sql = (
            "SELECT a.id, a.key, a.uri, a.driver, a.table_path, a.array_path, a.run_id, "
            "r.year, r.iteration, a.meta FROM artifact a LEFT JOIN run r ON r.id = a.run_id"
        )
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY a.created_at, a.id"
        return [
            ViewSource(
                artifact_id=str(r[0]),
                key=r[1],
                uri=r[2],
                driver=r[3] or "other",
                table_path=r[4],
                array_path=r[5],
                run_id=r[6],
                year=r[7],
                iteration=r[8],
                meta=json_load(r[9]),
            )
            for r in self._rows(sql, params)
        ]

    def facet_values(
        self, artifact_ids: Sequence[str], keys: Sequence[tuple[str | None, str]]
    ) -> dict[tuple[str | None, str], dict[str, tuple[Any, ...]]]:
        """Typed facet rows of artifacts for ``(namespace or None, key)`` pairs.

        Returns
        -------
        dict
            ``{(namespace, key): {artifact id: (value_type, value_str,
            value_num, value_bool, value_json)}}``.
        """
        out: dict[tuple[str | None, str], dict[str, tuple[Any, ...]]] = {k: {} for k in keys}
        if not artifact_ids or not keys:
            return out
        rows = self._rows(
            "SELECT CAST(artifact_id AS VARCHAR), namespace, key, value_type, value_str, "
            "value_num, value_bool, value_json FROM artifact_kv "
            "WHERE artifact_id IN (SELECT unnest(?::UUID[])) "
            "AND key IN (SELECT unnest(?::VARCHAR[]))",
            [list(artifact_ids), sorted({k for _, k in keys})],
        )
        for aid, namespace, key, *typed in rows:
            for ns, wanted in keys:
                if wanted == key and (ns is None or ns == namespace):
                    out[(ns, wanted)].setdefault(aid, tuple(typed))
        return out

    def counts(self) -> dict[str, int]:
        """Row counts of the schema tables (diagnostics and tests)."""
        rows = self._rows(
            "SELECT (SELECT count(*) FROM schema_profile), (SELECT count(*) FROM artifact_schema)"
        )
        return {"schema_profile": int(rows[0][0]), "artifact_schema": int(rows[0][1])}


def _predicate_sql(pred: KVPredicate) -> tuple[str, list[Any]]:
    clauses, params = ["key = ?"], [pred.key]
    if pred.namespace is not None:
        clauses.insert(0, "namespace = ?")
        params.insert(0, pred.namespace)
    value = pred.value
    if pred.op != "=":
        clauses.append(f"value_type = 'num' AND value_num {pred.op} ?")
        params.append(float(value))
    elif value is None:
        clauses.append("value_type = 'null'")
    elif isinstance(value, bool):
        clauses.append(
            "((value_type = 'bool' AND value_bool = ?) OR (value_type = 'str' AND value_str = ?))"
        )
        params.extend([value, pred.text])
    elif isinstance(value, int | float):
        clauses.append(
            "((value_type = 'num' AND value_num = ?) OR (value_type = 'str' AND value_str = ?))"
        )
        params.extend([float(value), pred.text])
    else:
        clauses.append("value_type = 'str' AND value_str = ?")
        params.append(str(value))
    return " AND ".join(clauses), params

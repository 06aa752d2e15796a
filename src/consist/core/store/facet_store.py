"""All SQL for config facets and their typed key/value index.

Tables (migration 3, see :mod:`consist.core.store.schema`):

* ``config_facet``: facet payloads, deduplicated by content id
  (:func:`consist.core.store.facet_rows.facet_id`).
* ``run_facet`` / ``artifact_facet``: which payload a run / an artifact has.
* ``run_config_kv`` / ``artifact_kv``: the payload flattened to dotted keys
  with a typed value (``value_type`` + ``value_str`` / ``value_num`` /
  ``value_bool`` / ``value_json``), written only when ``facet_index`` is on.

Rows are built from a run snapshot by :func:`rows_for_run` /
:func:`add_artifact_rows` and written by :func:`write_facet_rows` inside
the batched transaction that writes the run itself (see
:mod:`consist.core.store.batch`), so a run and its facet are committed
together. Every write is idempotent (``ON CONFLICT DO NOTHING``): a facet
never changes once its run has started, and replaying a journal snapshot
writes the same rows again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from consist.core.store.facet_rows import (
    VALUE_TYPES,
    ArtifactKV,
    ConfigFacet,
    ConfigKV,
    decode_value,
    dumps_json,
    facet_id,
    flatten_facet,
    loads_json,
)
from consist.core.store.rows import (
    ARTIFACT_COLUMNS,
    RUN_COLUMNS,
    artifact_from_row,
    from_db_time,
    run_from_row,
    to_db_time,
)
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run

_first = itemgetter(0)
_KV_VALUE_COLUMNS = "value_type, value_str, value_num, value_bool, value_json"
_FACET_COLUMNS = "id, namespace, schema_name, schema_version, facet_json, created_at"


# --------------------------------------------------------------------------- #
# Rows written with a run snapshot
# --------------------------------------------------------------------------- #
@dataclass
class FacetRows:
    """Facet rows of one or more snapshots, ready to insert.

    Attributes
    ----------
    facets:
        ``config_facet`` rows (``_FACET_COLUMNS`` order).
    run_links, artifact_links:
        ``(owner id, facet_id, namespace, indexed)`` rows.
    run_kv, artifact_kv:
        ``(owner id, facet_id, namespace, key, value_type, value_str,
        value_num, value_bool, value_json)`` rows.
    """

    facets: list[list[Any]] = field(default_factory=list)
    run_links: list[list[Any]] = field(default_factory=list)
    run_kv: list[list[Any]] = field(default_factory=list)
    artifact_links: list[list[Any]] = field(default_factory=list)
    artifact_kv: list[list[Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.facets)

    def extend(self, other: FacetRows) -> None:
        """Append the rows of ``other``."""
        self.facets.extend(other.facets)
        self.run_links.extend(other.run_links)
        self.run_kv.extend(other.run_kv)
        self.artifact_links.extend(other.artifact_links)
        self.artifact_kv.extend(other.artifact_kv)


def _facet_row(
    fid: str,
    namespace: str,
    facet: Mapping[str, Any],
    schema_name: Any,
    schema_version: Any,
    created_at: Any,
) -> list[Any]:
    return [
        fid,
        namespace,
        None if schema_name is None else str(schema_name),
        None if schema_version is None else str(schema_version),
        dumps_json(facet),
        to_db_time(created_at),
    ]


def rows_for_run(record: ConsistRecord, rows: FacetRows | None = None) -> FacetRows:
    """Facet rows of a run snapshot (nothing when the run has no facet).

    The namespace is the run's model name. ``run.meta["facet_index"]``
    (default True) decides whether the key/value rows are written;
    ``run.meta["facet_schema_version"]`` / ``["facet_schema_name"]`` tag
    the payload.
    """
    rows = rows if rows is not None else FacetRows()
    facet = record.facet
    if facet is None:
        return rows
    run = record.run
    namespace = run.model_name
    schema_name = run.meta.get("facet_schema_name")
    schema_version = run.meta.get("facet_schema_version")
    indexed = bool(run.meta.get("facet_index", True))
    fid = facet_id(namespace, facet, schema_name=schema_name, schema_version=schema_version)
    rows.facets.append(
        _facet_row(fid, namespace, facet, schema_name, schema_version, run.created_at)
    )
    rows.run_links.append([run.id, fid, namespace, indexed])
    if indexed:
        for key, typed in flatten_facet(facet):
            rows.run_kv.append([run.id, fid, namespace, key, *typed])
    return rows


def add_artifact_rows(art: Artifact, rows: FacetRows, *, namespace: str) -> FacetRows:
    """Append the facet rows of an artifact that carries ``meta["facet"]``.

    The namespace is the model name of the run that produced (first logged)
    the artifact, as for run facets, so ``beam.phys_sim_iteration>=2``
    selects the artifacts of ``beam`` runs. Only scalar fields are indexed
    (lists and empty dicts stay in the payload), and only when
    ``meta["facet_index"]`` is true.
    """
    meta = art.meta or {}
    facet = meta.get("facet")
    if not isinstance(facet, Mapping):
        return rows
    schema_name = meta.get("facet_schema_name")
    schema_version = meta.get("facet_schema_version")
    indexed = bool(meta.get("facet_index", False))
    fid = facet_id(namespace, facet, schema_name=schema_name, schema_version=schema_version)
    rows.facets.append(
        _facet_row(fid, namespace, facet, schema_name, schema_version, art.created_at)
    )
    artifact_id = str(art.id)
    rows.artifact_links.append([artifact_id, fid, namespace, indexed])
    if indexed:
        for key, typed in flatten_facet(facet, scalars_only=True):
            rows.artifact_kv.append([artifact_id, fid, namespace, key, *typed])
    return rows


def write_facet_rows(con: Any, batches: Iterable[FacetRows]) -> None:
    """Insert facet rows (deduplicated, idempotent) on an open transaction.

    One query finds the payloads and links already stored; only new rows
    are inserted, without ``ON CONFLICT`` (which roughly doubles the cost of
    a small insert in DuckDB). A run or artifact that already has its link
    also has its key/value rows: both are written in the same transaction.
    """
    facets: dict[str, list[Any]] = {}
    run_links: dict[str, list[Any]] = {}
    run_kv: dict[tuple[str, str, str], list[Any]] = {}
    artifact_links: dict[str, list[Any]] = {}
    artifact_kv: dict[tuple[str, str], list[Any]] = {}
    for rows in batches:
        for row in rows.facets:
            facets.setdefault(row[0], row)
        for row in rows.run_links:
            run_links.setdefault(row[0], row)
        for row in rows.run_kv:
            run_kv.setdefault((row[0], row[2], row[3]), row)
        for row in rows.artifact_links:
            artifact_links.setdefault(row[0], row)
        for row in rows.artifact_kv:
            artifact_kv.setdefault((row[0], row[3]), row)
    if not facets:
        return
    known = _stored(con, list(facets), list(run_links), list(artifact_links))
    new_facets = [row for fid, row in facets.items() if ("f", fid) not in known]
    new_runs = {rid for rid in run_links if ("r", rid) not in known}
    new_artifacts = {aid for aid in artifact_links if ("a", aid) not in known}
    _insert(con, "config_facet", _FACET_COLUMN_TYPES, new_facets)
    _insert(
        con,
        "run_facet",
        _link_columns("run_id", "VARCHAR"),
        [row for rid, row in run_links.items() if rid in new_runs],
    )
    _insert(
        con,
        "run_config_kv",
        _kv_columns("run_id", "VARCHAR"),
        [row for row in run_kv.values() if row[0] in new_runs],
    )
    _insert(
        con,
        "artifact_facet",
        _link_columns("artifact_id", "UUID"),
        [row for aid, row in artifact_links.items() if aid in new_artifacts],
    )
    _insert(
        con,
        "artifact_kv",
        _kv_columns("artifact_id", "UUID"),
        [row for row in artifact_kv.values() if row[0] in new_artifacts],
    )


def _stored(
    con: Any, facet_ids: list[str], run_ids: list[str], artifact_ids: list[str]
) -> set[tuple[str, str]]:
    """``("f", facet id)``, ``("r", run id)``, ``("a", artifact id)`` already stored."""
    parts, params = [], []
    for sql, ids in (
        ("SELECT 'f', id FROM config_facet WHERE id IN (SELECT unnest(?::VARCHAR[]))", facet_ids),
        (
            "SELECT 'r', run_id FROM run_facet WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            run_ids,
        ),
        (
            "SELECT 'a', CAST(artifact_id AS VARCHAR) FROM artifact_facet "
            "WHERE artifact_id IN (SELECT unnest(?::UUID[]))",
            artifact_ids,
        ),
    ):
        if ids:
            parts.append(sql)
            params.append(ids)
    rows = con.execute(" UNION ALL ".join(parts), params).fetchall()
    return {(r[0], r[1]) for r in rows}


_FACET_COLUMN_TYPES = (
    ("id", "VARCHAR"),
    ("namespace", "VARCHAR"),
    ("schema_name", "VARCHAR"),
    ("schema_version", "VARCHAR"),
    ("facet_json", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
)


def _link_columns(owner: str, owner_type: str) -> tuple[tuple[str, str], ...]:
    return (
        (owner, owner_type),
        ("facet_id", "VARCHAR"),
        ("namespace", "VARCHAR"),
        ("indexed", "BOOLEAN"),
    )


def _kv_columns(owner: str, owner_type: str) -> tuple[tuple[str, str], ...]:
    return (
        (owner, owner_type),
        ("facet_id", "VARCHAR"),
        ("namespace", "VARCHAR"),
        ("key", "VARCHAR"),
        ("value_type", "VARCHAR"),
        ("value_str", "VARCHAR"),
        ("value_num", "DOUBLE"),
        ("value_bool", "BOOLEAN"),
        ("value_json", "VARCHAR"),
    )


def _insert(
    con: Any, table: str, columns: Sequence[tuple[str, str]], rows: list[list[Any]]
) -> None:
    """One ``INSERT ... SELECT unnest(?), ...`` per table, one list parameter per column.

    Binding one parameter per column (not per value) keeps a 1,000-row insert
    at a few milliseconds; a ``VALUES (?, ...), ...`` statement with that many
    placeholders spends most of its time binding them.
    """
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    select = ", ".join(f"unnest(?::{kind}[])" for _, kind in columns)
    params = [list(column) for column in zip(*rows, strict=True)]
    con.execute(f"INSERT INTO {table} ({names}) SELECT {select}", params)


# --------------------------------------------------------------------------- #
# Reads
# --------------------------------------------------------------------------- #
def _facet_from_row(row: Sequence[Any]) -> ConfigFacet:
    payload = row[4]
    return ConfigFacet.model_construct(
        id=row[0],
        namespace=row[1],
        schema_name=row[2],
        schema_version=row[3],
        facet=loads_json(payload) if isinstance(payload, str) else dict(payload or {}),
        created_at=from_db_time(row[5]),
    )


def _kv_fields(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "facet_id": row[1],
        "namespace": row[2],
        "key": row[3],
        "value_type": row[4],
        "value_str": row[5],
        "value_num": row[6],
        "value_bool": row[7],
        "value_json": row[8],
    }


def _in_list(column: str, values: Sequence[Any], params: list[Any]) -> str:
    """``column IN (...)``: literal placeholders for a few values, unnest for many."""
    if len(values) <= 16:
        params.extend(values)
        return f"{column} IN ({', '.join('?' * len(values))})"
    params.append(list(values))
    return f"{column} IN (SELECT unnest(?))"


class FacetStore:
    """Domain-level queries over the facet tables of one DuckDB store.

    Parameters
    ----------
    connections:
        The store's :class:`~consist.core.store.connection.DuckDBConnectionManager`.
    before_read:
        Called before every read (the metadata store commits its queued
        writes there, so a read sees every run recorded so far).
    """

    def __init__(self, connections: Any, *, before_read: Callable[[], None] | None = None) -> None:
        self.connections = connections
        self._before_read = before_read or (lambda: None)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._before_read()
        with self.connections.connection() as con:
            return con.execute(sql, list(params)).fetchall()

    # -- facet payloads -------------------------------------------------------

    def get_facet(self, facet_id: str) -> ConfigFacet | None:
        """The facet payload with this id, or None."""
        rows = self._rows(f"SELECT {_FACET_COLUMNS} FROM config_facet WHERE id = ?", [facet_id])
        return _facet_from_row(rows[0]) if rows else None

    def list_facets(
        self,
        *,
        namespace: str | None = None,
        schema_name: str | None = None,
        limit: int | None = 100,
    ) -> list[ConfigFacet]:
        """Facet payloads, newest first, optionally filtered."""
        clauses, params = [], []
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if schema_name is not None:
            clauses.append("schema_name = ?")
            params.append(schema_name)
        sql = f"SELECT {_FACET_COLUMNS} FROM config_facet"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_facet_from_row(r) for r in self._rows(sql, params)]

    def run_facet(self, run_id: str) -> ConfigFacet | None:
        """The facet payload of a run, or None."""
        cols = ", ".join("f." + c for c in _FACET_COLUMNS.split(", "))
        rows = self._rows(
            f"SELECT {cols} FROM run_facet l JOIN config_facet f ON f.id = l.facet_id "
            "WHERE l.run_id = ?",
            [run_id],
        )
        return _facet_from_row(rows[0]) if rows else None

    def artifact_facet(self, artifact_id: uuid.UUID | str) -> ConfigFacet | None:
        """The facet payload of an artifact, or None."""
        cols = ", ".join("f." + c for c in _FACET_COLUMNS.split(", "))
        rows = self._rows(
            f"SELECT {cols} FROM artifact_facet l JOIN config_facet f ON f.id = l.facet_id "
            "WHERE l.artifact_id = ?",
            [str(artifact_id)],
        )
        return _facet_from_row(rows[0]) if rows else None

    # -- run key/values -------------------------------------------------------

    def _kv_sql(
        self,
        run_ids: Sequence[str],
        *,
        columns: str,
        namespace: str | None,
        prefix: str | None,
        keys: Sequence[str] | None,
        limit_per_run: int | None,
        params: list[Any],
    ) -> str:
        clauses = []
        source = "run_config_kv"
        if len(run_ids) <= 16:
            clauses.append(_in_list("run_id", run_ids, params))
        else:  # a join on the unnested ids beats an IN-subquery for long lists
            source = "(SELECT unnest(?) AS wanted_id) w JOIN run_config_kv ON run_id = w.wanted_id"
            params.append(list(run_ids))
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if prefix:
            clauses.append("starts_with(key, ?)")
            params.append(prefix)
        if keys is not None:
            clauses.append(_in_list("key", keys, params))
        sql = f"SELECT {columns} FROM {source}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if limit_per_run is not None:
            sql += " QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY key) <= ?"
            params.append(int(limit_per_run))
        return sql

    def run_kv(
        self,
        run_id: str,
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Sequence[str] | None = None,
        limit: int | None = 10_000,
    ) -> list[ConfigKV]:
        """A run's flattened facet rows, sorted by key."""
        if keys is not None and not keys:
            return []
        params: list[Any] = []
        sql = self._kv_sql(
            [run_id],
            columns=f"run_id, facet_id, namespace, key, {_KV_VALUE_COLUMNS}",
            namespace=namespace,
            prefix=prefix,
            keys=keys,
            limit_per_run=None,
            params=params,
        )
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [
            ConfigKV.model_construct(run_id=r[0], **_kv_fields(r)) for r in self._rows(sql, params)
        ]

    def config_values(
        self,
        run_ids: Sequence[str],
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Sequence[str] | None = None,
        limit_per_run: int | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Typed flattened values of several runs in one query.

        Returns
        -------
        dict
            ``{run_id: {key: value}}`` (keys sorted) for the runs that have
            indexed facet rows matching the filters; other runs are absent.
        """
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids or (keys is not None and not keys):
            return {}
        params: list[Any] = []
        sql = self._kv_sql(
            run_ids,
            columns=f"run_id, key, {_KV_VALUE_COLUMNS}",
            namespace=namespace,
            prefix=prefix,
            keys=keys,
            limit_per_run=limit_per_run,
            params=params,
        )
        found: dict[str, list[tuple[str, Any]]] = {}
        for r in self._rows(sql, params):
            found.setdefault(r[0], []).append((r[1], decode_value(*r[2:7])))
        return {
            run_id: dict(sorted(found[run_id], key=_first)) for run_id in run_ids if run_id in found
        }

    def runs_with_values(
        self,
        run_ids: Sequence[str],
        *,
        namespace: str | None = None,
        prefix: str | None = None,
        keys: Sequence[str] | None = None,
        limit_per_run: int | None = None,
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Model name and typed flattened values of each *recorded* run, in one query.

        Returns
        -------
        dict
            ``{run_id: (model_name, {key: value})}``; run ids not in the store
            are absent, recorded runs without matching entries map to ``{}``.
        """
        run_ids = list(dict.fromkeys(run_ids))
        if not run_ids:
            return {}
        params: list[Any] = []
        if keys is not None and not keys:
            inner = f"SELECT run_id, key, {_KV_VALUE_COLUMNS} FROM run_config_kv WHERE false"
        else:
            inner = self._kv_sql(
                run_ids,
                columns=f"run_id, key, {_KV_VALUE_COLUMNS}",
                namespace=namespace,
                prefix=prefix,
                keys=keys,
                limit_per_run=limit_per_run,
                params=params,
            )
        where = _in_list("r.id", run_ids, params)
        sql = (
            f"SELECT r.id, r.model_name, k.key, {_KV_VALUE_COLUMNS} FROM run r "
            f"LEFT JOIN ({inner}) k ON k.run_id = r.id WHERE {where}"
        )
        found: dict[str, tuple[str, list[tuple[str, Any]]]] = {}
        for r in self._rows(sql, params):
            entry = found.setdefault(r[0], (r[1], []))
            if r[2] is not None:
                entry[1].append((r[2], decode_value(*r[3:8])))
        return {
            run_id: (found[run_id][0], dict(sorted(found[run_id][1], key=_first)))
            for run_id in run_ids
            if run_id in found
        }

    def facet_values(
        self, run_ids: Sequence[str], key: str, namespace: str | None = None
    ) -> dict[str, Any]:
        """For each run that has flattened facet ``key``, its typed value.

        Parameters
        ----------
        run_ids:
            Runs to look up (one query however many).
        key:
            Flattened dotted key (a literal dot escaped as ``\\.``).
        namespace:
            Facet namespace; None means each run's own facet (whose namespace
            is the run's model name).

        Returns
        -------
        dict
            ``{run_id: value}``; runs without the key are absent. Values are
            typed (``str``, ``int``/``float``, ``bool``, ``None``, or a
            list/dict for JSON values).
        """
        values = self.config_values(run_ids, namespace=namespace, keys=[key])
        return {run_id: entries[key] for run_id, entries in values.items()}

    def get_value(self, run_id: str, key: str, *, namespace: str | None = None) -> tuple[bool, Any]:
        """``(found, value)`` of one flattened key of a run."""
        params: list[Any] = [run_id, key]
        sql = f"SELECT {_KV_VALUE_COLUMNS} FROM run_config_kv WHERE run_id = ? AND key = ?"
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        rows = self._rows(sql + " LIMIT 1", params)
        return (True, decode_value(*rows[0])) if rows else (False, None)

    def find_runs_by_kv(
        self,
        *,
        namespace: str,
        key: str,
        value_type: str | None = None,
        value_str: str | None = None,
        value_num: float | None = None,
        value_bool: bool | None = None,
        limit: int | None = 100,
    ) -> list[Run]:
        """Runs whose facet has ``key`` (with the given typed value), newest first."""
        where, params = _value_filter(namespace, key, value_type, value_str, value_num, value_bool)
        sql = (
            f"SELECT {RUN_COLUMNS} FROM run WHERE id IN "
            f"(SELECT run_id FROM run_config_kv WHERE {where}) "
            "ORDER BY created_at DESC, id DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [run_from_row(r) for r in self._rows(sql, params)]

    # -- artifact key/values --------------------------------------------------

    def artifact_kv(
        self, artifact_id: uuid.UUID | str, *, prefix: str | None = None, limit: int | None = 10_000
    ) -> list[ArtifactKV]:
        """An artifact's indexed scalar facet rows, sorted by key."""
        params: list[Any] = [str(artifact_id)]
        sql = (
            f"SELECT artifact_id, facet_id, namespace, key, {_KV_VALUE_COLUMNS} "
            "FROM artifact_kv WHERE artifact_id = ?"
        )
        if prefix:
            sql += " AND starts_with(key, ?)"
            params.append(prefix)
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [
            ArtifactKV.model_construct(
                artifact_id=r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0])),
                **_kv_fields(r),
            )
            for r in self._rows(sql, params)
        ]

    def find_artifacts_by_kv(
        self,
        *,
        key: str,
        namespace: str | None = None,
        value_type: str | None = None,
        value_str: str | None = None,
        value_num: float | None = None,
        value_bool: bool | None = None,
        limit: int | None = 100,
    ) -> list[Artifact]:
        """Artifacts whose indexed facet has ``key`` (with the typed value), newest first."""
        where, params = _value_filter(namespace, key, value_type, value_str, value_num, value_bool)
        sql = (
            f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE id IN "
            f"(SELECT artifact_id FROM artifact_kv WHERE {where}) ORDER BY created_at DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [artifact_from_row(r) for r in self._rows(sql, params)]

    # -- diagnostics -----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Row counts of the facet tables."""
        self._before_read()
        tables = ("config_facet", "run_facet", "run_config_kv", "artifact_facet", "artifact_kv")
        with self.connections.connection() as con:
            return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def _value_filter(
    namespace: str | None,
    key: str,
    value_type: str | None,
    value_str: str | None,
    value_num: float | None,
    value_bool: bool | None,
) -> tuple[str, list[Any]]:
    """WHERE clause for a key (and typed value) lookup in a KV table."""
    clauses, params = ["key = ?"], [key]
    if namespace is not None:
        clauses.insert(0, "namespace = ?")
        params.insert(0, namespace)
    if value_type is not None:
        if value_type not in VALUE_TYPES:
            raise ValueError(f"value_type must be one of {VALUE_TYPES}, got {value_type!r}")
        clauses.append("value_type = ?")
        params.append(value_type)
    if value_str is not None:
        clauses.append("value_str = ?")
        params.append(value_str)
    if value_num is not None:
        clauses.append("value_num = ?")
        params.append(float(value_num))
    if value_bool is not None:
        clauses.append("value_bool = ?")
        params.append(bool(value_bool))
    return " AND ".join(clauses), params

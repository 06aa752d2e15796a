"""Run and artifact queries (find_runs and friends): the SQL behind the query API.

Mixed into :class:`~consist.core.store.metadata_store.MetadataStore`; every
method commits this process's queued writes first so results include them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from consist.core.store.rows import (
    ARTIFACT_COLUMNS,
    LINKED_ARTIFACT_COLUMNS,
    RUN_COLUMNS,
    artifact_from_row,
    from_db_time,
    run_from_row,
    to_db_time,
)
from consist.models.artifact import Artifact
from consist.models.run import Run

# Filters that map to one column each (parameter name -> column).
RUN_FILTER_COLUMNS = {
    "year": "year",
    "iteration": "iteration",
    "stage": "stage",
    "phase": "phase",
    "model": "model_name",
    "name": "model_name",
    "status": "status",
    "parent_id": "parent_run_id",
}


def run_filter_sql(
    filters: dict[str, Any], tags: Sequence[str] | None, tags_any: Sequence[str] | None = None
) -> tuple[str, list[Any]]:
    """``WHERE`` clause and parameters for the column filters and tag filters."""
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "since":
            clauses.append("created_at >= ?")
            params.append(to_db_time(value))
            continue
        clauses.append(f"{RUN_FILTER_COLUMNS[name]} = ?")
        params.append(value)
    if tags:
        clauses.append("list_has_all(tags, ?::VARCHAR[])")
        params.append(list(tags))
    if tags_any:
        clauses.append("list_has_any(tags, ?::VARCHAR[])")
        params.append(list(tags_any))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class RunQueryMixin:
    """The run/artifact query methods of the metadata store."""

    connections: Any
    _flush_before_read: Callable[[], None]  # provided by MetadataStore

    def query_runs(
        self,
        filters: dict[str, Any],
        *,
        tags: Sequence[str] | None = None,
        tags_any: Sequence[str] | None = None,
        order: str = "newest",
        limit: int | None = 100,
        window: int | None = None,
    ) -> list[Run]:
        """Runs matching every filter.

        Parameters
        ----------
        filters:
            Column filters by API name (see ``RUN_FILTER_COLUMNS``); None
            values are ignored.
        tags, tags_any:
            Runs carrying all of / any of these tags.
        order:
            ``"newest"`` (created_at descending) or ``"latest_iteration"``
            (highest iteration first, then newest).
        limit:
            Maximum rows (None for all).
        window:
            Consider only the ``window`` newest matching runs, then apply
            ``order`` and ``limit`` to them (None: every matching run).
        """
        self._flush_before_read()
        where, params = run_filter_sql(filters, tags, tags_any)
        newest = " ORDER BY created_at DESC, id DESC"
        if order == "latest_iteration":
            order_sql = " ORDER BY iteration DESC NULLS LAST, created_at DESC, id DESC"
        else:
            order_sql = newest
        if window is not None:
            # Rank the window on the three sort columns only, then read whole
            # rows for the few runs kept: a 10,000-run window of full rows
            # (meta JSON included) cost ~10 ms at 100,000 runs.
            picked = (
                f"SELECT id FROM (SELECT id, iteration, created_at FROM run{where}{newest} "
                f"LIMIT ?) AS considered{order_sql}"
            )
            params.append(int(window))
            if limit is not None:
                picked += " LIMIT ?"
                params.append(int(limit))
            sql = f"SELECT {RUN_COLUMNS} FROM run WHERE id IN ({picked}){order_sql}"
        else:
            sql = f"SELECT {RUN_COLUMNS} FROM run{where}{order_sql}"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(int(limit))
        with self.connections.connection() as con:
            rows = con.execute(sql, params).fetchall()
        return [run_from_row(r) for r in rows]

    def history_rows(self, limit: int, tags_any: Sequence[str] | None) -> list[tuple[Any, ...]]:
        """Recent runs as plain tuples for a history table (newest first)."""
        self._flush_before_read()
        where, params = run_filter_sql({}, None, tags_any)
        sql = (
            "SELECT id, model_name, status, year, iteration, stage, phase, tags, "
            "parent_run_id, created_at, ended_at, "
            "coalesce(json_extract(meta, '$.cache_hit')::BOOLEAN, false), signature "
            f"FROM run{where} ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        with self.connections.connection() as con:
            return con.execute(sql, [*params, int(limit)]).fetchall()

    def find_artifacts(
        self,
        *,
        creator: str | None = None,
        consumer: str | None = None,
        key: str | None = None,
        driver: str | None = None,
        direction: str | None = None,
        limit: int = 100,
    ) -> list[Artifact]:
        """Artifacts output by ``creator`` / input to ``consumer`` / with ``key`` (newest first).

        With a creator or consumer, artifacts carry the key and metadata that
        run logged them with, and ``key`` matches that run-local key.
        ``driver`` matches the artifact's driver; ``direction`` (``"input"``
        or ``"output"``) keeps artifacts some run logged in that direction.
        """
        self._flush_before_read()
        joins, clauses, params = [], [], []
        columns = ARTIFACT_COLUMNS_QUALIFIED
        for run_id, link_direction, alias in ((creator, "output", "c"), (consumer, "input", "u")):
            if run_id is None:
                continue
            joins.append(
                f"JOIN run_artifact_link {alias} ON {alias}.artifact_id = a.id "
                f"AND {alias}.direction = '{link_direction}' AND {alias}.run_id = ?"
            )
            params.append(run_id)
        if creator is not None or consumer is not None:
            link = "c" if creator is not None else "u"
            columns = LINKED_ARTIFACT_COLUMNS.replace("l.", f"{link}.")
            if key is not None:
                clauses.append(f"{link}.key = ?")
                params.append(key)
        elif key is not None:
            clauses.append("a.key = ?")
            params.append(key)
        if driver is not None:
            clauses.append("a.driver = ?")
            params.append(driver)
        if direction is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM run_artifact_link d "
                "WHERE d.artifact_id = a.id AND d.direction = ?)"
            )
            params.append(direction)
        sql = f"SELECT DISTINCT {columns} FROM artifact a " + " ".join(joins)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY 12 DESC, 1 LIMIT ?"
        params.append(int(limit))
        with self.connections.connection() as con:
            rows = con.execute(sql, params).fetchall()
        return [artifact_from_row(r) for r in rows]

    def search_runs(self, text: str, limit: int | None) -> list[Run]:
        """Runs whose id, model name, a tag, the description or a logged artifact key
        contains ``text`` (case-insensitive), newest first."""
        self._flush_before_read()
        needle = text.lower()
        sql = (
            f"SELECT {RUN_COLUMNS} FROM run WHERE contains(lower(id), ?) "
            "OR contains(lower(model_name), ?) "
            "OR contains(lower(coalesce(description, '')), ?) "
            "OR coalesce(list_bool_or([contains(lower(t), ?) FOR t IN tags]), false) "
            "OR EXISTS (SELECT 1 FROM run_artifact_link l JOIN artifact a ON a.id = l.artifact_id "
            "WHERE l.run_id = run.id AND (contains(lower(l.key), ?) OR contains(lower(a.key), ?))) "
            "ORDER BY created_at DESC, id DESC"
        )
        params: list[Any] = [needle] * 6
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.connections.connection() as con:
            rows = con.execute(sql, params).fetchall()
        return [run_from_row(r) for r in rows]

    def store_counts(self) -> dict[str, Any]:
        """Counts for a store summary: runs by model and status, cache hits, date range,
        artifacts, links and scenario headers."""
        self._flush_before_read()
        hit = "coalesce(json_extract(meta, '$.cache_hit')::BOOLEAN, false)"
        with self.connections.connection() as con:
            by_model = con.execute(
                f"SELECT model_name, status, count(*), count(*) FILTER (WHERE {hit}) FROM run "
                "GROUP BY model_name, status ORDER BY model_name, status"
            ).fetchall()
            first, last = con.execute("SELECT min(created_at), max(created_at) FROM run").fetchone()
            artifacts = con.execute("SELECT count(*) FROM artifact").fetchone()[0]
            links = con.execute("SELECT count(*) FROM run_artifact_link").fetchone()[0]
            scenarios = con.execute(
                "SELECT count(*) FROM run WHERE list_contains(tags, 'scenario_header')"
            ).fetchone()[0]
        return {
            "by_model": [tuple(row) for row in by_model],
            "first_run_at": from_db_time(first),
            "last_run_at": from_db_time(last),
            "artifacts": int(artifacts),
            "links": int(links),
            "scenarios": int(scenarios),
        }


ARTIFACT_COLUMNS_QUALIFIED = ", ".join("a." + c for c in ARTIFACT_COLUMNS.split(", "))

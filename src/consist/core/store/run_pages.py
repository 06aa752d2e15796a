"""Paged, filtered run listings for the web page (server-side paging).

Mixed into :class:`~consist.core.store.metadata_store.MetadataStore`. A page
costs two statements: a count of the matching runs, and the ids of one page
(ordered on ``created_at``, ``id``, so ties never reorder between pages)
joined back to their rows, so that only the rows of the page are
materialized whatever the store's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consist.core.store.rows import RUN_COLUMNS, run_from_row, to_db_time
from consist.core.store.run_queries import RUN_FILTER_COLUMNS, run_filter_sql
from consist.models.run import Run

# Listing orders: SQL ORDER BY per name (id breaks ties: pages never overlap).
PAGE_ORDERS = {
    "newest": "created_at DESC, id DESC",
    "oldest": "created_at ASC, id ASC",
}


@dataclass(frozen=True)
class RunPage:
    """One page of a run listing.

    Attributes
    ----------
    total:
        How many runs match the filters (all pages).
    offset:
        Position of the first run of ``runs`` among them (0-based).
    runs:
        The runs of this page, in the listing's order.
    """

    total: int
    offset: int
    runs: list[Run]


class RunPageQueryMixin:
    """Paged run listings with totals, for the web page."""

    connections: Any
    _flush_before_read: Callable[[], None]  # provided by MetadataStore

    def run_page(
        self,
        filters: dict[str, Any],
        *,
        tags: Sequence[str] | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
        order: str = "newest",
    ) -> RunPage:
        """One page of the runs matching every filter, with the total count.

        Parameters
        ----------
        filters:
            Column filters by API name (the keys of ``RUN_FILTER_COLUMNS``, and
            ``since``: created at or after); None values are ignored.
        tags:
            Runs carrying all of these tags.
        until:
            Runs created at or before this moment.
        offset, limit:
            The page: skip ``offset`` matching runs, return at most ``limit``.
        order:
            A key of ``PAGE_ORDERS``: ``"newest"`` (default) or ``"oldest"``.

        Returns
        -------
        RunPage

        Raises
        ------
        ValueError
            For an unknown filter or order, or a negative offset or limit.
        """
        unknown = sorted(set(filters) - set(RUN_FILTER_COLUMNS) - {"since"})
        if unknown:
            raise ValueError(f"unknown run filter(s) {unknown}; use {sorted(RUN_FILTER_COLUMNS)}")
        if order not in PAGE_ORDERS:
            raise ValueError(f"order must be one of {sorted(PAGE_ORDERS)}, got {order!r}")
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")
        self._flush_before_read()
        where, params = run_filter_sql(filters, tags)
        if until is not None:
            where += (" AND " if where else " WHERE ") + "created_at <= ?"
            params.append(to_db_time(until))
        order_sql = PAGE_ORDERS[order]
        page_ids = f"SELECT id FROM run{where} ORDER BY {order_sql} LIMIT ? OFFSET ?"
        sql = f"SELECT {RUN_COLUMNS} FROM run WHERE id IN ({page_ids}) ORDER BY {order_sql}"
        with self.connections.connection() as con:
            total = int(con.execute(f"SELECT count(*) FROM run{where}", params).fetchone()[0])
            rows = con.execute(sql, [*params, int(limit), int(offset)]).fetchall() if limit else []
        return RunPage(total=total, offset=offset, runs=[run_from_row(r) for r in rows])

    def run_filter_values(self, *, limit: int = 500) -> dict[str, list[tuple[Any, int]]]:
        """The values the run filters can take, each with its number of runs.

        Parameters
        ----------
        limit:
            At most this many values per field (the most frequent first).

        Returns
        -------
        dict
            ``{"model": [(name, n), ...], "status": [...], "year": [...],
            "tag": [...]}``; years and names are never None.
        """
        self._flush_before_read()
        queries = {
            "model": "SELECT model_name, count(*) FROM run GROUP BY 1",
            "status": "SELECT status, count(*) FROM run GROUP BY 1",
            "year": "SELECT year, count(*) FROM run WHERE year IS NOT NULL GROUP BY 1",
            "tag": "SELECT t, count(*) FROM (SELECT unnest(tags) AS t FROM run) GROUP BY 1",
        }
        found: dict[str, list[tuple[Any, int]]] = {}
        with self.connections.connection() as con:
            for name, sql in queries.items():
                rows = con.execute(f"{sql} ORDER BY 2 DESC, 1 LIMIT ?", [int(limit)]).fetchall()
                found[name] = sorted((value, int(n)) for value, n in rows)
        return found

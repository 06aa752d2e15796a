"""Store engines: one module per database engine, behind the store's domain verbs.

DuckDB (the default, embedded engine) lives in :mod:`consist.core.store`
itself (``connection`` holds its connection handling). The second engine,
PostgreSQL for team mode, lives here:

* :mod:`.pg_sql` translates the store's DuckDB SQL (parameters, types,
  DuckDB-only constructs) and migrations for PostgreSQL, in one place;
* :mod:`.postgres` is the connection manager and the DuckDB-style
  connection adapter over psycopg 3 / SQLAlchemy;
* :mod:`.pg_store` is :class:`~.pg_store.PostgresMetadataStore`, the
  metadata store on PostgreSQL (writes straight to the tables, migrations
  under an advisory lock);
* :mod:`.pg_claims` is single-flight on PostgreSQL: claims are session
  advisory locks, released by the server when their holder dies;
* :mod:`.pg_hot` is hot data on PostgreSQL: ingested rows checked by DuckDB
  in the client and loaded into the server's ``global_tables`` with COPY;
* :mod:`.pg_views` is views on PostgreSQL, over the ingested tables only;
* :mod:`.opening` opens a tracker's store on the engine its options name.

This package's ``__init__`` is light (callers branch with
:func:`on_postgres` and guard DuckDB-only features with
:func:`require_duckdb`); psycopg and SQLAlchemy are imported only when a
PostgreSQL store is opened.
"""

from __future__ import annotations

from typing import Any


def require_duckdb(store: Any, feature: str) -> None:
    """Refuse ``feature`` on a PostgreSQL store (not supported there yet).

    Parameters
    ----------
    store:
        The tracker's metadata store (or None: nothing to check).
    feature:
        What the caller is about to do, as the user called it (``"ingest()"``).

    Raises
    ------
    NotImplementedError
        If ``store`` is a PostgreSQL store (``db_url``): naming ``db_url``
        and ``feature``, before anything is done.
    """
    if store is None or type(store).__name__ != "PostgresMetadataStore":
        return
    from consist.core.store.engines.pg_store import unsupported

    raise unsupported(feature, store.url)


def on_postgres(store: Any) -> bool:
    """Whether ``store`` is a PostgreSQL store (``db_url``); False for DuckDB or None.

    Parameters
    ----------
    store:
        A tracker's metadata store, or None.

    Returns
    -------
    bool
    """
    return store is not None and type(store).__name__ == "PostgresMetadataStore"

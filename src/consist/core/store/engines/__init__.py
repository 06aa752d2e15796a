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
  under an advisory lock).

Nothing here is imported by ``import consist``; psycopg and SQLAlchemy are
imported when a PostgreSQL store is opened.
"""

"""The metadata store on PostgreSQL: :class:`PostgresMetadataStore`.

The same domain verbs as :class:`~consist.core.store.metadata_store.MetadataStore`
(it subclasses it, so every query, run page, output lookup, lineage and facet
read is the same code, its SQL translated by
:mod:`consist.core.store.engines.pg_sql`); what differs is where a write goes
and how the schema is made:

* **Writes.** DuckDB mode commits a run as one narrow ``write_log`` row and
  applies the log to the tables in batches (one writer per file at a time).
  Here many processes write at once and each must see the others' runs, so
  ``flush`` upserts the run, artifact, link, content, stat-cache and facet rows
  directly, in one transaction: once ``run()`` returns, every reader on the
  server sees the run. The ``write_log`` table exists (the migrations are
  shared) and stays empty. A deadlock or serialization failure between two
  writers retries the transaction.
* **Schema.** The numbered migrations of :mod:`consist.core.store.schema`,
  each statement translated by :func:`~consist.core.store.engines.pg_sql.translate_ddl`,
  recorded in the same ``schema_version`` table with the same numbers; the
  compatibility functions (:data:`~consist.core.store.engines.pg_sql.COMPAT_FUNCTIONS`)
  are created with migration 1. Concurrent openers serialize on a
  transaction-level advisory lock, so a store is migrated once.
* **No local files.** Nothing is kept beside the database: no write log file,
  no turn lock, no claims folder. The run journal stays under the tracker's
  ``run_dir`` (as in DuckDB mode).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from consist.core.store.batch import PendingWrite, write_batch
from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.engines.pg_sql import COMPAT_FUNCTIONS, translate_ddl
from consist.core.store.engines.postgres import PostgresConnectionManager, redact
from consist.core.store.metadata_store import _STORES, MetadataStore
from consist.core.store.rows import to_db_time
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL
from consist.core.store.write_log import LogState

logger = logging.getLogger("consist")

# Statements a migration needs on PostgreSQL besides its translated DDL: the
# DuckDB functions the store's SQL calls, and indexes for the orderings the
# query API reads (DuckDB answers them by scanning its columns; PostgreSQL
# would read and sort every row: history(10) took ~190 ms at 100,000 runs).
# A later change ships with a new migration number, as in DuckDB.
PG_EXTRAS: dict[int, tuple[str, ...]] = {
    1: (
        *COMPAT_FUNCTIONS,
        "CREATE INDEX IF NOT EXISTS run_created_idx ON run (created_at DESC, id DESC)",
        "CREATE INDEX IF NOT EXISTS run_model_created_idx "
        "ON run (model_name, created_at DESC, id DESC) INCLUDE (iteration)",
        "CREATE INDEX IF NOT EXISTS run_tags_idx ON run USING gin (tags)",
    )
}

# pg_advisory_xact_lock key of schema migrations ("consist" in ASCII, as a bigint).
_MIGRATION_LOCK = 0x636F6E73697374
_SCHEMA_VERSION_COLUMNS = {"version", "description", "applied_at"}
_RETRIES = 5
_MIN_SERVER = 130000  # anycompatiblearray (the compatibility functions)


def unsupported(feature: str, url: str) -> NotImplementedError:
    """The error for a feature the PostgreSQL engine does not provide yet."""
    return NotImplementedError(
        f"{feature} is not supported yet with a PostgreSQL store (db_url={redact(url)!r}); "
        "use a DuckDB store (db_path=...) for it"
    )


class PostgresMetadataStore(MetadataStore):
    """Domain-level access to the metadata tables of one PostgreSQL database.

    Parameters
    ----------
    url:
        ``postgresql://`` or ``postgresql+psycopg://`` URL of the database
        (which must exist; the tables are created on first use).
    connections:
        Optional pre-built connection manager; by default the process's
        shared one for ``url``.
    read_only:
        Queries work, writes raise
        :class:`~consist.core.store.connection.ReadOnlyStoreError` (and the
        server refuses them: sessions are read-only).

    Raises
    ------
    ValueError
        If ``url`` is not a PostgreSQL URL (naming ``db_url``).
    ImportError
        If psycopg 3 / SQLAlchemy are missing (``pip install 'consist[postgres]'``).
    """

    def __init__(
        self,
        url: str,
        *,
        connections: PostgresConnectionManager | None = None,
        read_only: bool = False,
    ) -> None:
        # Not MetadataStore.__init__: no file checks and no write log hooks.
        self.url = url
        self.connections = connections or PostgresConnectionManager.shared(url, read_only=read_only)
        self.db_path = self.connections.path  # the redacted URL, for messages
        self.read_only = read_only
        self._attach(LogState())  # never logged to: writes go to the tables

    # -- schema ---------------------------------------------------------------

    def ensure_schema(self) -> int:
        """Check the database is a Consist store (or empty) and apply pending migrations.

        Returns
        -------
        int
            The schema version now in force.

        Raises
        ------
        ValueError
            If the database holds tables of another application (no Consist
            ``schema_version``); nothing is written.
        ReadOnlyStoreError
            If migrations are pending and the store was opened read-only.
        """
        with self.connections.connection() as con:
            version = con.raw.info.server_version
            if version < _MIN_SERVER:
                raise RuntimeError(
                    f"db_url={self.db_path!r}: PostgreSQL {version // 10000} is too old for "
                    "the Consist store; it needs PostgreSQL 13 or later"
                )
            self._check_identity(con)
            current = self._current_version(con)
        if current >= LATEST_VERSION:
            return current
        if self.read_only:
            raise ReadOnlyStoreError(
                f"{self.db_path} has schema version {current} and this Consist needs "
                f"{LATEST_VERSION}; it cannot be migrated with read_only=True"
            )
        with self.connections.transaction() as con:
            con.execute("SELECT pg_advisory_xact_lock(?)", [_MIGRATION_LOCK])
            self._check_identity(con)
            con.raw.execute(translate_ddl(SCHEMA_VERSION_DDL))
            current = self._current_version(con)  # another opener may have migrated meanwhile
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    con.raw.execute(translate_ddl(statement))
                for statement in PG_EXTRAS.get(migration.version, ()):
                    con.raw.execute(statement)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [migration.version, migration.description, to_db_time(datetime.now(UTC))],
                )
        return LATEST_VERSION

    def _check_identity(self, con: Any) -> None:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name"
            ).fetchall()
        ]
        if "schema_version" not in tables:
            if tables:
                names = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" * (len(tables) > 5))
                raise ValueError(
                    f"db_url={self.db_path!r} is a database of another application (tables "
                    f"{names}, no Consist schema_version table); Consist does not add its "
                    "tables to it: point db_url at a new (empty) database"
                )
            return
        columns = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
            ).fetchall()
        }
        if columns != _SCHEMA_VERSION_COLUMNS:
            raise ValueError(
                f"db_url={self.db_path!r} has a schema_version table that is not Consist's "
                f"(columns {sorted(columns)}); point db_url at a new (empty) database"
            )

    @contextmanager
    def _open_checked(self) -> Iterator[Any]:
        with self.connections.connection() as con:
            yield con

    @staticmethod
    def _current_version(con: Any) -> int:
        exists = con.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        value = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return int(value or 0)

    # -- writes ---------------------------------------------------------------

    def flush(
        self, before_commit: Callable[[], None] | None = None, write: PendingWrite | None = None
    ) -> None:
        """Commit the queued snapshots and ``write`` to the tables, in one transaction.

        As :meth:`MetadataStore.flush`, but the rows go to the tables
        directly (no write log): readers in every process see them once this
        returns. ``before_commit`` (the journal's file write) runs after the
        rows are written, before the commit; a server round trip dwarfs what
        overlapping the two would save. A deadlock or serialization failure
        against another writer is retried (up to 5 attempts, with a short
        random pause).
        """
        import psycopg

        with self._pending_lock:
            batch, self._pending = self._pending, []
        if write is not None:
            batch.append(write)
        if not batch:
            return
        guard_failed = False
        guard = before_commit
        try:
            for attempt in range(_RETRIES):
                try:
                    with self.connections.transaction(hot=True) as con:
                        write_batch(con, batch)
                        if guard is not None:
                            guard_failed = True
                            guard()
                            guard_failed = False
                            guard = None  # ran: the transaction is committed next
                    break
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    if attempt == _RETRIES - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1) * (0.5 + random.random()))
        except BaseException:
            try:
                if guard is not None:  # the database failed before the guard ran
                    guard_failed = True
                    guard()
                    guard_failed = False
            finally:
                with self._pending_lock:
                    self._pending[:0] = batch[:-1] if guard_failed else batch
            raise
        for item in batch:
            if item.on_synced is not None:
                try:
                    item.on_synced()
                except Exception:  # bookkeeping only: the data is committed
                    logger.exception("consist: post-commit callback failed")

    # -- SQLAlchemy -----------------------------------------------------------

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine over the PostgreSQL database (its own pooled sessions).

        ``run_query`` statements are PostgreSQL SQL; the store's JSON columns
        (``meta``, ``identity``, facet payloads) are ``TEXT`` holding JSON,
        decoded for the table models' ``JSON`` columns.
        """
        return self.connections.query_engine()

    def close(self) -> None:
        """Commit queued writes and return the session; the last user disposes of the pool."""
        if self not in _STORES:
            return
        self._flush_quietly()
        _STORES.discard(self)
        hooks = self.connections.before_release
        if self._flush_quietly in hooks:
            hooks.remove(self._flush_quietly)
        self.connections.close()

"""Store maintenance on PostgreSQL: what differs from the DuckDB file.

The maintenance services (:mod:`~consist.core.store.purge`,
:mod:`~consist.core.store.doctor`, :mod:`~consist.core.store.compaction`,
:mod:`~consist.core.store.shards`) run the same SQL on both engines; they
call this module where a PostgreSQL store needs something else:

* **Which tables, how big.** :func:`user_tables` lists the base tables of
  every user schema (the store's schema unqualified, others as
  ``schema.table``, as DuckDB names ``global_tables.persons``);
  :func:`table_bytes` gives each one's ``pg_total_relation_size`` (heap,
  indexes, TOAST). A server has no store file, so the size of a store is
  the sum of its tables', and there is no write-ahead log of its own.
* **Deleted rows.** DuckDB's ``DELETE`` returns the count as a row;
  PostgreSQL's returns no rows. :func:`count_deleted` runs the statement as
  ``WITH gone AS (DELETE ... RETURNING 1) SELECT count(*) FROM gone``.
* **One writer at a time for a change of many runs.** On DuckDB a purge or a
  merge holds the file's write turn, so no run is recorded between its checks
  (dependents, conflicts) and its writes. On PostgreSQL many processes write
  at once, so :func:`exclusive_transaction` takes ``SHARE ROW EXCLUSIVE``
  locks on the tables it changes at the start of the transaction: other
  writers wait until it commits (readers never do), two such changes
  serialize, and a deadlock with a writer that already held one of the
  tables is retried.
* **A consistent read of many statements.** An export reads a run's
  upstream in several statements; :func:`consistent_read` runs them in one
  ``REPEATABLE READ READ ONLY`` transaction, so runs another process records
  meanwhile are either wholly in the shard or not at all (DuckDB's reader
  already sees one snapshot per connection use).
* **Compaction.** PostgreSQL gives dead rows' space back itself:
  :func:`vacuum` runs ``VACUUM (ANALYZE)`` over the store's tables, outside
  any transaction (the session is in autocommit mode). It does not block
  readers or writers; it makes the space of deleted rows reusable, returns
  empty pages at the end of each table to the operating system and refreshes
  the planner's statistics. ``VACUUM FULL`` (a rewrite that gives back all the
  space) takes an exclusive lock that would stop every worker of a team, so
  it is left to the database's administrator.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from consist.core.store.connection import StoreLockTimeout
from consist.core.store.engines.pg_store import PostgresMetadataStore

T = TypeVar("T")

_USER_TABLES_SQL = """
SELECT n.nspname, c.relname, n.nspname = current_schema() AS own
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
ORDER BY own DESC, n.nspname, c.relname
"""
_RETRIES = 5


def is_postgres(store: Any) -> bool:
    """Whether ``store`` is a PostgreSQL store (``db_url``)."""
    return isinstance(store, PostgresMetadataStore)


def user_tables(con: Any) -> list[tuple[str, str, str]]:
    """``(label, schema, table)`` of every base table of the database's user schemas.

    ``label`` is the table's name in the store's own schema, ``schema.table``
    elsewhere; the store's schema comes first, then by schema and name.
    """
    return [
        (name if own else f"{schema}.{name}", schema, name)
        for schema, name, own in con.execute(_USER_TABLES_SQL).fetchall()
    ]


def _quoted(schema: str, name: str) -> str:
    return '"{}"."{}"'.format(schema.replace('"', '""'), name.replace('"', '""'))


def row_counts(con: Any, tables: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Exact ``count(*)`` of each of ``tables`` (from :func:`user_tables`), by label."""
    return {
        label: int(con.execute(f"SELECT count(*) FROM {_quoted(schema, name)}").fetchone()[0])
        for label, schema, name in tables
    }


def table_bytes(con: Any, tables: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """``pg_total_relation_size`` (heap, indexes, TOAST) of each of ``tables``, by label."""
    return {
        label: int(
            con.execute(
                "SELECT pg_total_relation_size(to_regclass(?))", [_quoted(schema, name)]
            ).fetchone()[0]
            or 0
        )
        for label, schema, name in tables
    }


def count_deleted(con: Any, sql: str, params: Any) -> int:
    """Run the ``DELETE`` statement ``sql``; return how many rows it deleted."""
    row = con.execute(f"WITH gone AS ({sql} RETURNING 1) SELECT count(*) FROM gone", params)
    found = row.fetchone()
    return int(found[0]) if found else 0


def exclusive_transaction(
    store: Any,
    tables: Sequence[str],
    work: Callable[[Any], T],
    *,
    lock_timeout_s: float = 120.0,
) -> T:
    """Run ``work(con)`` in one transaction that no other writer of ``tables`` interleaves.

    On DuckDB a plain transaction (the store's write turn already makes it
    exclusive). On PostgreSQL the transaction first locks ``tables`` in
    ``SHARE ROW EXCLUSIVE`` mode (other writers of them wait; readers do
    not), waiting up to ``lock_timeout_s`` for writers in flight; if the
    server resolves a deadlock with a writer by aborting this transaction,
    it is run again (``work`` must only change the database).

    Raises
    ------
    StoreLockTimeout
        PostgreSQL: if another session keeps one of ``tables`` locked past
        ``lock_timeout_s`` (nothing was changed).
    """
    if not is_postgres(store):
        with store.connections.transaction() as con:
            return work(con)
    import psycopg

    names = ", ".join(tables)
    for attempt in range(_RETRIES):
        try:
            with store.connections.transaction() as con:
                con.execute(f"SET LOCAL lock_timeout = '{max(1, int(lock_timeout_s * 1000))}ms'")
                try:
                    con.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
                except psycopg.errors.LockNotAvailable as exc:
                    raise StoreLockTimeout(
                        f"another session kept a table of {store.db_path} ({names}) locked "
                        f"for {lock_timeout_s:g} s; nothing was changed: retry when it is done"
                    ) from exc
                return work(con)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.02 * (attempt + 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def consistent_read(store: Any) -> Iterator[Any]:
    """Yield a connection whose reads all see one snapshot of the store.

    DuckDB: the store's connection as it is. PostgreSQL: inside ``BEGIN
    ISOLATION LEVEL REPEATABLE READ READ ONLY`` (unless this thread's session
    is already in a transaction, whose snapshot rules then apply).
    """
    from_pg = is_postgres(store)
    with store.connections.connection() as con:
        if not from_pg:
            yield con
            return
        from psycopg.pq import TransactionStatus

        if con.raw.info.transaction_status != TransactionStatus.IDLE:
            yield con
            return
        con.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield con
        except BaseException:
            with contextlib.suppress(Exception):  # a broken session rolls back itself
                con.raw.execute("ROLLBACK")
            raise
        con.raw.execute("COMMIT")


def vacuum(store: Any, *, lock_timeout_s: float) -> tuple[int, int, dict[str, int]]:
    """``VACUUM (ANALYZE)`` every table of the store's database.

    Returns
    -------
    tuple
        ``(bytes before, bytes after, {table: rows})``; bytes are the sum of
        the tables' ``pg_total_relation_size``.

    Raises
    ------
    RuntimeError
        If the store's session is inside a transaction (VACUUM cannot run there).
    StoreLockTimeout
        If a table stays locked by another session (a schema change, another
        VACUUM) past ``lock_timeout_s``.
    """
    import psycopg
    from psycopg import sql
    from psycopg.pq import TransactionStatus

    store.flush()
    with store.connections.connection() as con:
        if con.raw.info.transaction_status != TransactionStatus.IDLE:
            raise RuntimeError(
                f"compact_store() runs VACUUM, which cannot run inside a transaction; "
                f"{store.db_path} is in one in this thread: call it outside store operations"
            )
        tables = user_tables(con)
        before = sum(table_bytes(con, tables).values())
        statement = sql.SQL("VACUUM (ANALYZE) {}").format(
            sql.SQL(", ").join(sql.Identifier(schema, name) for _, schema, name in tables)
        )
        con.raw.execute(
            sql.SQL("SET lock_timeout = {}").format(
                sql.Literal(f"{max(1, int(lock_timeout_s * 1000))}ms")
            )
        )
        try:
            con.raw.execute(statement)
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreLockTimeout(
                f"a table of {store.db_path} stayed locked by another session for "
                f"{lock_timeout_s:g} s; retry compact_store() when it is done"
            ) from exc
        finally:
            con.raw.execute("RESET lock_timeout")
        after = sum(table_bytes(con, tables).values())
        counts = row_counts(con, tables)
    return before, after, counts

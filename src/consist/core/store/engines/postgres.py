"""PostgreSQL connections for the store (team mode): manager and DuckDB-style adapter.

:class:`PostgresConnectionManager` gives the store what
:class:`~consist.core.store.connection.DuckDBConnectionManager` gives it
(``connection()``, ``transaction()``, ``release()``, ``close()``, the hook
lists, ``epoch``), over one psycopg 3 connection per manager and process,
taken from a SQLAlchemy engine's pool (``postgresql+psycopg://`` URL).

Concurrency is the server's: there is no file to take turns at, so no turn
lock, no idle release and no hand-over pauses. The connection runs in
autocommit mode; ``transaction()`` wraps its block in ``BEGIN`` ... ``COMMIT``,
so a run's write is visible to every reader once it returns. ``epoch`` grows
with every outermost use: in-memory knowledge keyed by epoch (the signature
index, known-absent outputs; see :mod:`consist.core.store.signature_index`)
assumes nobody else writes within an epoch, which only holds within one use
here.

:class:`PgConnection` is the subset of the DuckDB connection API the store
calls (``execute`` returning a result with ``fetchone``/``fetchall``/
``description``, ``executemany``, ``begin``/``commit``/``rollback``,
``cursor``), translating each statement with
:mod:`consist.core.store.engines.pg_sql`.

psycopg and SQLAlchemy are imported only when a manager is created.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from consist.core.store.engines.pg_sql import Translator
from consist.core.tracker_config import check_db_url

INSTALL_HINT = "pip install 'consist[postgres]'"


def check_url(url: Any, name: str = "db_url") -> str:
    """Validate a PostgreSQL store URL; return it (see ``TrackerConfig.db_url``).

    Raises
    ------
    ValueError
        If ``url`` is not a ``postgresql://`` or ``postgresql+psycopg://`` URL
        with a host and a database (the message names ``name``).
    """
    return check_db_url(url, name)


def redact(url: str) -> str:
    """``url`` without its password (for messages and ``db_path``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return ("postgresql+psycopg" if scheme.lower() == "postgresql" else scheme) + "://" + rest


def _require_driver() -> Any:
    try:
        import psycopg
        import sqlalchemy
    except ImportError as exc:
        raise ImportError(
            f"a PostgreSQL store (db_url) needs psycopg 3 and SQLAlchemy 2: {INSTALL_HINT}"
        ) from exc
    return psycopg, sqlalchemy


class DuckDBOnlyMethod(NotImplementedError, AttributeError):
    """A DuckDB connection method a PostgreSQL store's connection does not have.

    Also an ``AttributeError``, so ``hasattr`` / ``getattr(..., default)``
    probes see a missing attribute.
    """


class PgResult:
    """The result of one statement (DuckDB's ``execute(...)`` return value)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def description(self) -> Any:
        """Column descriptions (``name`` first), or None for a statement without rows."""
        return self._cursor.description

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        if self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows."""
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        """Up to ``size`` further rows."""
        if self._cursor.description is None:
            return []
        return self._cursor.fetchmany(size)


class PgConnection:
    """A psycopg connection speaking the DuckDB connection API the store uses.

    Parameters
    ----------
    raw:
        A psycopg 3 connection in autocommit mode.
    translator:
        Translates DuckDB SQL (shared by the connections of one database).
    """

    def __init__(self, raw: Any, translator: Translator) -> None:
        self.raw = raw
        self._translator = translator
        self._last: PgResult | None = None

    def execute(self, sql: str, params: Any = None) -> PgResult:
        """Execute one statement (``?`` / ``$name`` / ``$1`` parameters); return its result."""
        statement = self._translator.translate(sql, params)
        cursor = self.raw.cursor()
        try:
            if statement.many:
                if statement.params:
                    cursor.executemany(statement.sql, statement.params)
            else:
                cursor.execute(statement.sql, statement.params)
        except Exception as exc:
            if self.raw.broken:  # the next use of the store reconnects
                raise ConnectionError(
                    f"lost the connection to the PostgreSQL store ({exc}); nothing of the "
                    "statement's transaction was committed"
                ) from exc
            raise
        self._last = PgResult(cursor)
        return self._last

    def executemany(self, sql: str, rows: Sequence[Any]) -> PgResult:
        """Execute ``sql`` once per parameter row."""
        rows = list(rows)
        cursor = self.raw.cursor()
        if rows:
            first = self._translator.translate(sql, rows[0])
            params = [self._translator.translate(sql, row).params for row in rows]
            cursor.executemany(first.sql, params)
        self._last = PgResult(cursor)
        return self._last

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row of the last result."""
        return self._last.fetchone() if self._last else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The remaining rows of the last result."""
        return self._last.fetchall() if self._last else []

    @property
    def description(self) -> Any:
        """Column descriptions of the last result."""
        return self._last.description if self._last else None

    def begin(self) -> None:
        """Start a transaction."""
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        """Commit the transaction.

        Raises
        ------
        RuntimeError
            If a statement of the transaction failed (PostgreSQL would turn
            the ``COMMIT`` into a silent rollback); it is rolled back.
        """
        from psycopg.pq import TransactionStatus

        if self.raw.info.transaction_status == TransactionStatus.INERROR:
            self.raw.execute("ROLLBACK")
            raise RuntimeError(
                "a statement of this transaction failed, so nothing of it was committed "
                "(rolled back); the error was raised by that statement"
            )
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.raw.execute("ROLLBACK")

    def cursor(self) -> PgConnection:
        """Another handle on the same session (DuckDB's ``cursor()``)."""
        return PgConnection(self.raw, self._translator)

    def close(self) -> None:
        """Nothing: the manager owns the session."""

    def __getattr__(self, name: str) -> Any:
        # A DuckDB connection method the store's PostgreSQL mode does not provide
        # (register, sql, df, ...): the feature calling it is not ported yet.
        if name.startswith("__"):
            raise AttributeError(name)
        raise DuckDBOnlyMethod(
            f"the feature calling the DuckDB connection method {name}() is not supported yet "
            "with a PostgreSQL store (db_url); use a DuckDB store (db_path=...) for it"
        )


def _install_loaders(raw: Any) -> None:
    """Read ``numeric`` as DuckDB returns its integers and decimals: int or float."""
    from psycopg.types.numeric import NumericLoader

    class _DuckLikeNumeric(NumericLoader):
        def load(self, data: Any) -> Any:
            value: Decimal = super().load(data)
            if value.is_finite() and value == value.to_integral_value():
                return int(value)
            return float(value)

    raw.adapters.register_loader("numeric", _DuckLikeNumeric)


class PostgresConnectionManager:
    """One psycopg session per process for a PostgreSQL store.

    Parameters
    ----------
    url:
        ``postgresql://`` or ``postgresql+psycopg://`` URL of the database.
    read_only:
        Open sessions with ``default_transaction_read_only``: the server
        refuses every write.
    connect_timeout_s:
        How long to wait for the server when connecting.
    """

    def __init__(
        self, url: str, *, read_only: bool = False, connect_timeout_s: float = 30.0
    ) -> None:
        check_url(url)
        _, sqlalchemy = _require_driver()
        self.url = url
        self.path = redact(url)  # what messages name (DuckDB: the file path)
        self.read_only = read_only
        self.lock_timeout_s = connect_timeout_s
        options = "-c default_transaction_read_only=on" if read_only else ""
        connect_args: dict[str, Any] = {"connect_timeout": max(1, int(connect_timeout_s))}
        if options:
            connect_args["options"] = options
        self.engine = sqlalchemy.create_engine(
            _sqlalchemy_url(url), pool_size=1, max_overflow=4, connect_args=connect_args
        )
        self._connect_args = connect_args
        self._query_engine: Any = None
        self._translator = Translator(self._primary_key)
        self._keys: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._proxy: Any = None  # the pool's DBAPI connection
        self._con: PgConnection | None = None
        self._depth = 0
        self._closed = False
        self._users = 0
        self._shared_key: str | None = None
        self.open_count = 0
        self.epoch = 0
        self.before_release: list[Callable[[], None]] = []
        self.before_use: list[Callable[[Any, int, bool], None]] = []
        self.before_close: list[Callable[[Any, int], None]] = []
        _MANAGERS.add(self)

    @classmethod
    def shared(cls, url: str, *, read_only: bool = False) -> PostgresConnectionManager:
        """The one manager of this process for ``url`` (pair each call with :meth:`close`)."""
        key = url + ("\0read-only" if read_only else "")
        with _SHARED_GUARD:
            manager = _SHARED.get(key)
            if manager is None or manager._closed:
                manager = cls(url, read_only=read_only)
                manager._shared_key = key
                _SHARED[key] = manager
            manager._users += 1
            return manager

    # -- the store's interface --------------------------------------------------

    @contextmanager
    def connection(self, *, hot: bool = False) -> Iterator[PgConnection]:
        """Yield the session (re-entrant; each outermost use is a new epoch)."""
        with self._use(hot=hot) as con:
            yield con

    @contextmanager
    def transaction(self, *, hot: bool = False) -> Iterator[PgConnection]:
        """Yield the session inside ``BEGIN`` ... ``COMMIT`` (rollback on error)."""
        with self._use(hot=hot) as con:
            con.begin()
            try:
                yield con
            except BaseException:
                with contextlib.suppress(Exception):  # a broken session rolls back itself
                    con.rollback()
                raise
            con.commit()

    def release(self) -> None:
        """Retry queued writes and return the session to the pool."""
        with self._lock:
            if self._depth == 0 and not self._closed:
                self._run_before_release()
                self._close_connection()

    def close(self) -> None:
        """Close for good (a shared manager closes when its last user does)."""
        if self._shared_key is not None:
            with _SHARED_GUARD:
                self._users -= 1
                if self._users > 0:
                    return
                if _SHARED.get(self._shared_key) is self:
                    del _SHARED[self._shared_key]
        with self._lock:
            if self._closed:
                return
            self._run_before_release()
            self._closed = True
            self._close_connection()
            self.engine.dispose()
            if self._query_engine is not None:
                self._query_engine.dispose()

    def query_engine(self) -> Any:
        """The SQLAlchemy engine for ``run_query`` (its own pooled sessions).

        The store keeps JSON documents in ``TEXT`` columns (see
        :mod:`.pg_sql`); this engine decodes them for SQLAlchemy's ``JSON``
        columns of the table models (``select(Run)`` returns ``meta`` as a
        dict, as on DuckDB). Real ``json`` columns decode as usual.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"store {self.path} has been closed")
            if self._query_engine is None:
                _, sqlalchemy = _require_driver()
                engine = sqlalchemy.create_engine(
                    _sqlalchemy_url(self.url),
                    pool_size=1,
                    max_overflow=4,
                    connect_args=self._connect_args,
                    json_deserializer=_json_loads,
                )
                # Decode in SQLAlchemy too: a TEXT column reaches it as a string.
                engine.dialect.supports_native_json_deserialization = False
                self._query_engine = engine
            return self._query_engine

    def schedule_maintenance(self) -> None:
        """Nothing to schedule: writes commit when made, sessions are not handed over."""

    @property
    def is_open(self) -> bool:
        """Whether this process holds a session."""
        return self._con is not None

    # -- internals ----------------------------------------------------------------

    def _run_before_release(self) -> None:
        for hook in list(self.before_release):
            hook()

    @contextmanager
    def _use(self, *, hot: bool) -> Iterator[PgConnection]:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"store {self.path} has been closed")
            con = self._con
            if con is None or con.raw.closed or con.raw.broken:
                con = self._open()
            self._depth += 1
            try:
                if self._depth == 1:
                    self.epoch += 1
                    for hook in self.before_use:
                        hook(con, self.epoch, hot)
                yield con
            finally:
                self._depth -= 1

    def _open(self) -> PgConnection:
        self._close_connection()
        try:
            proxy = self.engine.raw_connection()
        except Exception as exc:
            if type(exc).__name__ != "OperationalError":  # SQLAlchemy's or psycopg's
                raise
            raise ConnectionError(
                f"cannot connect to the PostgreSQL store db_url={self.path!r}: "
                f"{getattr(exc, 'orig', None) or exc}"
            ) from exc
        try:
            raw = proxy.driver_connection
            if raw.info.transaction_status != 0:  # pool hands back idle sessions only
                raw.rollback()
            raw.autocommit = True
            _install_loaders(raw)
        except BaseException:
            proxy.close()
            raise
        self._proxy = proxy
        self._con = PgConnection(raw, self._translator)
        self.open_count += 1
        return self._con

    def _close_connection(self) -> None:
        proxy, self._proxy, self._con = self._proxy, None, None
        if proxy is None:
            return
        raw = proxy.driver_connection
        if raw is None or raw.closed or raw.broken:
            with contextlib.suppress(Exception):  # a lost session is discarded, not reset
                proxy.invalidate()
            return
        with contextlib.suppress(Exception):
            raw.autocommit = False
        with contextlib.suppress(Exception):  # never raise into user code on close
            proxy.close()

    def _primary_key(self, table: str) -> list[str]:
        """Primary-key columns of ``table`` (for ``ON CONFLICT`` without a target)."""
        found = self._keys.get(table)
        if found is not None:
            return found
        con = self._con
        if con is None:
            raise RuntimeError("primary key lookup outside a connection use")
        rows = con.raw.execute(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            [table],
        ).fetchall()
        if not rows:
            raise ValueError(f"table {table} has no primary key for ON CONFLICT")
        self._keys[table] = [r[0] for r in rows]
        return self._keys[table]


def _json_loads(value: Any) -> Any:
    """JSON text (or bytes) decoded; anything already decoded as it is."""
    if isinstance(value, str | bytes | bytearray):
        return json.loads(value)
    return value


_MANAGERS: weakref.WeakSet[PostgresConnectionManager] = weakref.WeakSet()
_SHARED: dict[str, PostgresConnectionManager] = {}
_SHARED_GUARD = threading.Lock()
_INHERITED: list[Any] = []  # sessions a forked child inherited: kept, never used or closed


def _after_fork_in_child() -> None:
    """A forked child must not touch its parent's sessions (they share the socket).

    Closing one would end the parent's session too, so the child keeps the
    objects alive, unused, and opens its own on first use.
    """
    global _SHARED_GUARD
    _SHARED_GUARD = threading.Lock()
    for manager in list(_MANAGERS):
        if manager._proxy is not None:
            _INHERITED.append(manager._proxy)
        manager._proxy = None
        manager._con = None
        manager._depth = 0
        manager._lock = threading.RLock()
        with contextlib.suppress(Exception):
            manager.engine.dispose(close=False)
            if manager._query_engine is not None:
                manager._query_engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)

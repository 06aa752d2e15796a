"""SQLAlchemy access to the store: the engine and ``run_query``.

SQLAlchemy (and SQLModel) are imported here on first use only; nothing on a
run's path touches this module.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


def create_store_engine(
    cursor: Callable[[], Any],
    widen: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Any:
    """A SQLAlchemy engine whose connections are DuckDB cursors from ``cursor()``.

    Parameters
    ----------
    cursor:
        Returns a fresh DuckDB cursor of the store's open connection, so the
        engine shares the store's database instance (DuckDB refuses a second
        instance of one file with other settings) and its lock discipline.
    widen:
        Entered while a connection of the engine is checked out and left
        when it is returned (the store's ``all_cores``: queries through the
        engine use all of DuckDB's threads).

    Returns
    -------
    sqlalchemy.engine.Engine
        With ``NullPool``: each cursor is closed as soon as SQLAlchemy
        releases it.
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine("duckdb:///:memory:", poolclass=NullPool)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        from duckdb_engine import ConnectionWrapper

        return ConnectionWrapper(cursor())

    if widen is not None:

        @event.listens_for(engine, "checkout")
        def _widen(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            context = widen()
            context.__enter__()
            record.info["consist_widened"] = context

        @event.listens_for(engine, "checkin")
        def _narrow(dbapi_connection: Any, record: Any) -> None:
            context = record.info.pop("consist_widened", None)
            if context is not None:
                context.__exit__(None, None, None)

    return engine


def execute_query(engine: Any, hold: Callable[[], AbstractContextManager[Any]], query: Any) -> list:
    """Run a SQLAlchemy/SQLModel statement (or SQL text) and return every row.

    Statements run in an ORM session, so selecting a table model returns its
    instances. Rows of the ``run`` and ``artifact`` tables come back as
    :class:`~consist.models.run.Run` / :class:`~consist.models.artifact.Artifact`
    records (the objects ``find_runs`` and ``get_artifact`` return), a
    single-entity select as a list of objects, anything else as rows (tuples
    with attribute access by column name; a run/artifact entity in a row is
    converted and named ``Run`` / ``Artifact``).

    Parameters
    ----------
    engine:
        From :func:`create_store_engine`.
    hold:
        Context manager that keeps the store's connection open meanwhile.
    query:
        A SQLAlchemy executable (``select``, ``text``, ...) or a SQL string.

    Returns
    -------
    list
        The rows; empty for a statement that returns none (it is committed).

    Raises
    ------
    TypeError
        If ``query`` is neither a string nor a SQLAlchemy executable.
    """
    from sqlalchemy import text
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.base import Executable

    if isinstance(query, str):
        query = text(query)
    elif not isinstance(query, Executable):
        raise TypeError(
            "query must be a SQLAlchemy/SQLModel statement (select(...), text(...)) or a SQL "
            f"string, got {type(query).__name__}"
        )
    with hold(), Session(engine, expire_on_commit=False) as session:
        result = session.execute(query)
        # ORM results always have rows; a plain cursor result says whether it has any.
        rows = list(result.all()) if getattr(result, "returns_rows", True) else []
        session.commit()
    if not rows:
        return rows
    from consist.models.tables import ArtifactTable, RunTable

    records = (RunTable, ArtifactTable)

    def convert(value: Any) -> Any:
        return value.to_record() if isinstance(value, records) else value

    if len(rows[0]) == 1 and any(_is_entity(r[0]) for r in rows):
        return [convert(r[0]) for r in rows]
    if any(isinstance(v, records) for r in rows for v in r):
        row_type = _record_row_type(tuple(rows[0]._fields))
        return [row_type(*(convert(v) for v in r)) for r in rows]
    return rows


def _is_entity(value: Any) -> bool:
    return hasattr(value, "__table__") or hasattr(value, "model_fields")


@functools.lru_cache(maxsize=64)
def _record_row_type(fields: tuple[str, ...]) -> type:
    """A named tuple for rows whose run/artifact entities became records.

    The entity columns are named after the record (``Run``, ``Artifact``)
    rather than the table model; other names are kept (invalid or repeated
    ones are renamed by position, as ``namedtuple(rename=True)`` does).
    """
    renamed = [_RECORD_NAMES.get(f, f) for f in fields]
    return collections.namedtuple("Row", renamed, rename=True)  # type: ignore[misc]


_RECORD_NAMES = {"RunTable": "Run", "ArtifactTable": "Artifact"}

"""Open a tracker's store on the engine its options name: a DuckDB file or PostgreSQL."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from consist.core.store.metadata_store import MetadataStore


def open_store(
    *,
    db_path: str | os.PathLike[str] | None,
    db_url: str | None = None,
    lock_timeout_s: float = 120.0,
    idle_release_s: float = 0.25,
    max_hold_s: float = 2.0,
    read_only: bool = False,
) -> MetadataStore | None:
    """Open (and migrate) the store of a tracker.

    Parameters
    ----------
    db_path:
        A DuckDB file (created unless ``read_only``; its folder too).
    db_url:
        A PostgreSQL database (``postgresql://`` / ``postgresql+psycopg://``);
        exclusive with ``db_path``.
    lock_timeout_s, idle_release_s, max_hold_s:
        DuckDB's file hand-over timings (a PostgreSQL server needs none).
    read_only:
        Open for reading only; nothing is created or written.

    Returns
    -------
    MetadataStore or None
        The migrated store; None when neither ``db_path`` nor ``db_url`` is
        given (a journal-only tracker).

    Raises
    ------
    ValueError
        If both ``db_path`` and ``db_url`` are given, or either does not name
        a store (see :mod:`consist.core.store.store_identity`).
    FileNotFoundError
        If ``read_only`` and the DuckDB file does not exist.
    OSError
        If the DuckDB file cannot be written (naming ``read_only=True``).
    ImportError
        If ``db_url`` is given and psycopg is missing
        (``pip install 'consist[postgres]'``).
    """
    if db_path is not None and db_url is not None:
        raise ValueError(
            "db_path and db_url are both given: a tracker's store is either a DuckDB file "
            "(db_path) or a PostgreSQL database (db_url); drop one"
        )
    if db_url is not None:
        from consist.core.store.engines.pg_store import PostgresMetadataStore

        store: MetadataStore = PostgresMetadataStore(db_url, read_only=read_only)
        try:
            store.ensure_schema()
        except BaseException:
            store.close()
            raise
        return store
    if db_path is None:
        return None
    path = Path(os.path.abspath(db_path))
    if read_only and not path.is_file():
        raise FileNotFoundError(
            f"db_path={str(path)!r} does not exist; read_only=True opens an existing "
            "store (drop read_only to create one)"
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(
        str(path),
        lock_timeout_s=lock_timeout_s,
        idle_release_s=idle_release_s,
        max_hold_s=max_hold_s,
        read_only=read_only,
    )
    try:
        store.ensure_schema()
    except OSError as exc:
        store.close()
        if read_only or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise OSError(
            exc.errno,
            f"cannot open the store {path} for writing ({exc}); to read it, open the "
            "tracker with read_only=True",
        ) from exc
    return store

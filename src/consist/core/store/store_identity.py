"""Is the file at ``db_path`` a Consist store? Checked before anything is written.

DuckDB opens an existing CSV, Parquet or JSON file given as a database path
as an in-memory database over that file: every table created there vanishes
with the connection, so a store pointed at a data file would accept writes
and keep none of them. A store therefore refuses, before it writes anything:

* an existing path that is not a regular file, or whose header is not a
  DuckDB database header (:func:`check_store_path`, a few bytes read);
* a connection that is not backed by the file (defence in depth), and a
  DuckDB database that belongs to someone else: one with tables but no
  Consist ``schema_version`` table, or a ``schema_version`` table of another
  shape (:func:`check_store_connection`, at open time).

A missing file is fine (DuckDB creates it), and so is an empty DuckDB
database (the store adds its tables). A file shorter than a header is left
to DuckDB, which opens it under the store's lock: another process may be
creating it at this moment.

The header is read through a descriptor that is never closed (one per file,
for the life of the process): DuckDB locks its file with POSIX record
locks, which the kernel drops for the whole process when *any* descriptor of
the file is closed. Opening and closing the file to read its first bytes
while this process held the store (a second tracker on it, a notebook cell
run again) let another process open the database beside it.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

# A DuckDB file starts with an 8-byte checksum followed by the magic "DUCK".
_MAGIC_OFFSET = 8
_MAGIC = b"DUCK"
_HEADER_LEN = _MAGIC_OFFSET + len(_MAGIC)
_SCHEMA_VERSION_COLUMNS = {"version", "description", "applied_at"}
_HEAD_FDS: dict[tuple[int, int], int] = {}  # (device, inode) -> a read-only descriptor
_HEAD_GUARD = threading.Lock()
_FIX = (
    "point db_path at a new file (e.g. 'provenance.duckdb'; it is created) or at an existing "
    "Consist store"
)


def _looks_like(head: bytes) -> str:
    """A short description of what a non-DuckDB file appears to be."""
    signatures = (
        (b"PAR1", "a Parquet file"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (b"PK\x03\x04", "a ZIP archive (e.g. .xlsx)"),
        (b"\x89HDF", "an HDF5 file"),
        (b"CDF", "a NetCDF file"),
        (b"\x1f\x8b", "a gzip file"),
        (b"ARROW1", "an Arrow/Feather file"),
    )
    for magic, name in signatures:
        if head.startswith(magic):
            return name
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a DuckDB database"
    return "a text file (CSV, JSON, ...)"


def check_store_path(db_path: str | os.PathLike[str]) -> None:
    """Refuse a ``db_path`` that exists and is not a DuckDB database file.

    Parameters
    ----------
    db_path:
        The store's database file.

    Raises
    ------
    ValueError
        If ``db_path`` exists and is a directory or another non-regular
        file, or a file whose header is not DuckDB's (a CSV, a Parquet file,
        random bytes, ...). Nothing has been written when this raises.
    """
    path = os.fspath(db_path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # a new store
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"db_path={path!r} is a directory, not a database file; {_FIX}")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"db_path={path!r} is not a regular file; {_FIX}")
    head = _read_head(path, info, 64)
    if len(head) < _HEADER_LEN and not head.strip(b"\x00"):
        return  # empty or being created: DuckDB decides under the store's lock
    if head[_MAGIC_OFFSET:_HEADER_LEN] != _MAGIC:
        raise ValueError(
            f"db_path={path!r} exists and is {_looks_like(head)}, not a DuckDB database; "
            f"Consist keeps its records in a DuckDB file of its own and never writes into "
            f"a data file: {_FIX}"
        )


def _read_head(path: str, info: os.stat_result, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (whose stat is ``info``), never closing a descriptor.

    See the module docstring: closing would release DuckDB's lock if this
    process holds the file. One descriptor per (device, inode) stays open.
    """
    key = (info.st_dev, info.st_ino)
    with _HEAD_GUARD:
        fd = _HEAD_FDS.get(key)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            opened = os.fstat(fd)
            key = (opened.st_dev, opened.st_ino)  # the file the descriptor really is
            fd = _HEAD_FDS.setdefault(key, fd)
    return os.pread(fd, size, 0)


def check_store_connection(con: Any, db_path: str) -> None:
    """Refuse a connection that is not a Consist store in the file ``db_path``.

    Called once the store holds the file, before any migration runs.

    Raises
    ------
    ValueError
        If the connection is not backed by the file (DuckDB opened a data
        file as an in-memory database), or the database holds tables but no
        Consist ``schema_version`` table, or a ``schema_version`` table with
        other columns (another application's database).
    """
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or row[0] is None:
        raise ValueError(
            f"db_path={db_path!r} was opened by DuckDB as an in-memory database (a data file, "
            f"not a database): nothing written there would be kept; {_FIX}"
        )
    # duckdb_tables() and pragma_table_info cost a third of information_schema.
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() ORDER BY schema_name, table_name"
    ).fetchall()
    if ("main", "schema_version") not in tables:
        tables += con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
        if not tables:
            return  # an empty DuckDB database becomes a store
        names = ", ".join(f"{s}.{t}" for s, t in tables[:5])
        more = f" and {len(tables) - 5} more" if len(tables) > 5 else ""
        raise ValueError(
            f"db_path={db_path!r} is a DuckDB database of another application (tables "
            f"{names}{more}, no Consist schema_version table); Consist does not add its "
            f"tables to it: {_FIX}"
        )
    columns = {
        r[0]
        for r in con.execute("SELECT name FROM pragma_table_info('main.schema_version')").fetchall()
    }
    if columns != _SCHEMA_VERSION_COLUMNS:
        raise ValueError(
            f"db_path={db_path!r} has a schema_version table that is not Consist's "
            f"(columns {sorted(columns)}); it belongs to another application: {_FIX}"
        )

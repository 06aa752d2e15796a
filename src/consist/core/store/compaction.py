"""Store files as a whole: compacting one, and rebuilding one from the journal safely.

DuckDB never shrinks its file: deleted rows leave free blocks that later
writes reuse, and ``CHECKPOINT``/``VACUUM`` do not give them back. So
:func:`compact` copies the database into a new file (``COPY FROM
DATABASE``), checks that every table holds the same number of rows, and
renames the copy over the original, holding the store's write turn (the
``<db>.consist.lock`` every writing Consist process takes) from the copy to
the rename so that no writer can add rows to the old file meanwhile.

A PostgreSQL store (``db_url``) has no file to copy: :func:`compact` runs
``VACUUM (ANALYZE)`` over its tables instead (see
:func:`~consist.core.store.engines.pg_maintenance.vacuum`), which other
sessions keep reading and writing through.

:func:`rebuild_file` rebuilds a store from journal snapshots into a
temporary file next to the target and renames it into place only once it is
complete, so a failed rebuild leaves nothing half-built behind. An existing
target is refused unless the caller asks to replace it, and then it is moved
aside (never deleted).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from consist.core.store.connection import StoreLockTimeout, _ProcessTurn, is_lock_error
from consist.core.store.engines.pg_maintenance import is_postgres, vacuum
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.recovery import RecoveryReport, rebuild_from_journal

_TABLES_SQL = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_catalog = current_database()
ORDER BY table_schema, table_name
"""


@dataclass
class CompactionReport:
    """What :meth:`Tracker.compact_store` did.

    Attributes
    ----------
    db_path:
        The store file (PostgreSQL: the URL without its password).
    size_before, size_after:
        Bytes of the file (and its write-ahead log) before and after.
        PostgreSQL: the sum of the tables' ``pg_total_relation_size``;
        VACUUM makes dead rows' space reusable but gives back only empty
        pages at a table's end, so ``saved`` is often small (or negative:
        a first VACUUM writes a table's visibility map).
    tables:
        ``{table: row count}``, identical in the old and the new file
        (PostgreSQL: counted after the VACUUM).
    """

    db_path: str
    size_before: int
    size_after: int
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def saved(self) -> int:
        """Bytes given back."""
        return self.size_before - self.size_after


def _file_size(path: str) -> int:
    total = 0
    for name in (path, path + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(name).st_size
    return total


def _counts(con: object) -> dict[str, int]:
    counts = {}
    for schema, name in con.execute(_TABLES_SQL).fetchall():  # type: ignore[attr-defined]
        label = name if schema == "main" else f"{schema}.{name}"
        counts[label] = int(
            con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]  # type: ignore[attr-defined]
        )
    return counts


def _connect(path: str, deadline: float, timeout_s: float) -> object:
    """A writable DuckDB connection to ``path``, waiting for readers that hold it."""
    import duckdb

    delay = 0.01
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreLockTimeout(
                    f"database {path} stayed locked by another process for {timeout_s:g} s; "
                    "retry when it is done"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def compact(store: MetadataStore, *, lock_timeout_s: float = 120.0) -> CompactionReport:
    """Copy-compact the store file in place; VACUUM a PostgreSQL store (module docstring).

    Raises
    ------
    StoreLockTimeout
        If another process keeps the store past ``lock_timeout_s``
        (PostgreSQL: a table stays locked by a schema change or another VACUUM).
    RuntimeError
        If the copy does not hold the same rows (the original is kept);
        PostgreSQL: if this thread's session is inside a transaction.
    """
    if is_postgres(store):
        before, after, counts = vacuum(store, lock_timeout_s=lock_timeout_s)
        return CompactionReport(
            db_path=store.db_path,
            size_before=before,
            size_after=after,
            tables=counts,
        )
    path = os.path.realpath(store.db_path)
    store.schema_version()  # applies the write log and commits queued writes first
    deadline = time.monotonic() + lock_timeout_s
    manager = store.connections
    # Holding the manager's lock keeps this process's other threads from
    # re-opening the old file while it is copied and replaced.
    with manager._lock:
        turn = _ProcessTurn.acquire(path, deadline, lock_timeout_s)
        try:
            manager.release()  # this process's own connection: the file is ours alone
            if manager.is_open:
                raise RuntimeError(
                    f"{path} is in use by another thread of this process; compact it when "
                    "no store operation is running"
                )
            before, expected = _copy_and_replace(path, deadline, lock_timeout_s)
        finally:
            turn.release()
    return CompactionReport(
        db_path=store.db_path, size_before=before, size_after=_file_size(path), tables=expected
    )


def _copy_and_replace(
    path: str, deadline: float, lock_timeout_s: float
) -> tuple[int, dict[str, int]]:
    """Copy ``path`` into a compact file, check it, rename it over ``path`` (turn held)."""
    tmp = f"{path}.compact-{os.getpid()}.tmp"
    try:
        before = _file_size(path)
        con = _connect(path, deadline, lock_timeout_s)
        try:
            con.execute("CHECKPOINT")  # type: ignore[attr-defined]
            expected = _counts(con)
            name = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[attr-defined]
            for leftover in (tmp, tmp + ".wal"):
                Path(leftover).unlink(missing_ok=True)
            con.execute(f"ATTACH '{_sql_text(tmp)}' AS consist_compact")  # type: ignore[attr-defined]
            try:
                con.execute(f'COPY FROM DATABASE "{name}" TO consist_compact')  # type: ignore[attr-defined]
            finally:
                con.execute("DETACH consist_compact")  # type: ignore[attr-defined]
        finally:
            con.close()  # type: ignore[attr-defined]
        import duckdb

        check = duckdb.connect(tmp)
        try:
            copied = _counts(check)
            check.execute("CHECKPOINT")
        finally:
            check.close()
        if copied != expected:
            raise RuntimeError(
                f"the compacted copy of {path} does not hold the same rows ({copied} != "
                f"{expected}); the original was kept unchanged"
            )
        if os.path.exists(path + ".wal"):
            raise RuntimeError(
                f"{path}.wal appeared while compacting (another program wrote to the store); "
                "the original was kept unchanged, retry when it is done"
            )
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
    finally:
        for leftover in (tmp, tmp + ".wal"):
            Path(leftover).unlink(missing_ok=True)
    return before, expected


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class RebuildResult:
    """What :func:`rebuild_file` did.

    Attributes
    ----------
    db_path:
        The rebuilt store.
    report:
        Replayed runs and unreadable snapshots.
    moved_aside:
        Where the store that was at ``db_path`` before now is (``replace=True``), or None.
    """

    db_path: str
    report: RecoveryReport
    moved_aside: str | None = None


def rebuild_file(
    db_path: str | os.PathLike[str],
    run_dirs: list[str | os.PathLike[str]],
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
    lock_timeout_s: float = 10.0,
) -> RebuildResult:
    """Build a store at ``db_path`` from the journals of ``run_dirs``.

    Parameters
    ----------
    db_path:
        The store file to create.
    run_dirs:
        Run directories whose ``consist_runs/*.json`` snapshots are replayed.
    replace:
        If a file exists at ``db_path``, move it aside to
        ``<db_path>.replaced-<UTC time>`` (with its write-ahead log) once the
        new store is built; without it an existing file is refused.
    progress:
        Called with ``(snapshots done, snapshots total)`` as the rebuild goes.

    Raises
    ------
    FileExistsError
        If ``db_path`` exists and ``replace`` is False (nothing is written).
    FileNotFoundError
        If a run directory holds no journal (``consist_runs``).
    StoreLockTimeout
        If another process keeps the existing store open (``replace``).
    """
    target = os.path.abspath(db_path)
    if os.path.exists(target) and not replace:
        raise FileExistsError(target)
    for run_dir in run_dirs:
        if not (Path(run_dir) / "consist_runs").is_dir():
            raise FileNotFoundError(str(Path(run_dir) / "consist_runs"))
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{target}.rebuild-{os.getpid()}.tmp"
    for leftover in (tmp, tmp + ".wal"):
        Path(leftover).unlink(missing_ok=True)
    try:
        report = rebuild_from_journal(tmp, run_dirs, progress=progress)
        moved = None
        if os.path.exists(target):
            moved = _move_aside(target, lock_timeout_s)
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(target))
    finally:
        for leftover in (tmp, tmp + ".wal", tmp + ".consist.lock"):
            Path(leftover).unlink(missing_ok=True)
    return RebuildResult(db_path=target, report=report, moved_aside=moved)


def _move_aside(path: str, lock_timeout_s: float) -> str:
    """Rename the store at ``path`` (and its WAL) to ``<path>.replaced-<UTC time>``."""
    deadline = time.monotonic() + lock_timeout_s
    turn = _ProcessTurn.acquire(path, deadline, lock_timeout_s)
    try:
        import duckdb

        try:
            con = _connect(path, deadline, lock_timeout_s)  # nobody else holds it
        except duckdb.Error:
            pass  # not a DuckDB file: moved aside as it is
        else:
            con.execute("CHECKPOINT")  # type: ignore[attr-defined]  # merge the WAL
            con.close()  # type: ignore[attr-defined]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = f"{path}.replaced-{stamp}"
        n = 1
        while os.path.exists(aside):
            n += 1
            aside = f"{path}.replaced-{stamp}-{n}"
        os.rename(path, aside)
        if os.path.exists(path + ".wal"):
            os.rename(path + ".wal", aside + ".wal")
        return aside
    finally:
        turn.release()

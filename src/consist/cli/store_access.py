"""Finding and opening the store a command works on.

Discovery, in order: ``--db-path``, the ``CONSIST_DB`` environment variable,
then ``./provenance.duckdb``. The run directory (where relative artifact
paths resolve and the JSON journal lives) is ``--run-dir``, then
``CONSIST_RUN_DIR``, then the store's own directory if it holds the journal
(``consist_runs/``), else the one subdirectory of it that does (the usual
``project/provenance.duckdb`` + ``project/runs/`` layout), else the store's
directory. ``--mount NAME=PATH`` (repeatable) maps the mounts that
recorded URIs name (``inputs://...``).

Read commands open the store read-only (nothing is written, not even a
directory) and hand the file back after every query, so a command never
holds the lock longer than a query; commands that change the store say so
and open it for writing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from consist.cli.errors import LOCKED, NO_STORE, CliError, usage

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker

DEFAULT_DB = "provenance.duckdb"
DEFAULT_LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StoreOptions:
    """Where the store is and how to treat it (global options, overridable per command)."""

    db_path: str | None = None
    run_dir: str | None = None
    mounts: tuple[str, ...] = ()
    lock_timeout: float | None = None
    json: bool = False

    def overridden_by(
        self,
        *,
        db_path: str | None = None,
        run_dir: str | None = None,
        mounts: list[str] | None = None,
        lock_timeout: float | None = None,
        json: bool = False,
    ) -> StoreOptions:
        """These options with the ones given on the command itself taking precedence."""
        return replace(
            self,
            db_path=db_path or self.db_path,
            run_dir=run_dir or self.run_dir,
            mounts=self.mounts + tuple(mounts or ()),
            lock_timeout=lock_timeout if lock_timeout is not None else self.lock_timeout,
            json=json or self.json,
        )


def resolve_db_path(options: StoreOptions) -> Path:
    """The store file this command uses.

    Raises
    ------
    CliError
        (exit 3) If there is no file there, or it is a directory.
    """
    given = options.db_path or os.environ.get("CONSIST_DB") or DEFAULT_DB
    path = Path(given).expanduser()
    source = (
        "--db-path"
        if options.db_path
        else "CONSIST_DB"
        if os.environ.get("CONSIST_DB")
        else "the default"
    )
    if not path.exists():
        raise CliError(
            f"no store at {path} ({source}); pass --db-path PATH, set CONSIST_DB, or run "
            f"from the directory that holds {DEFAULT_DB}",
            NO_STORE,
        )
    if path.is_dir():
        raise CliError(
            f"{path} is a directory; --db-path names the store's DuckDB file "
            f"(e.g. {path / DEFAULT_DB})",
            NO_STORE,
        )
    return path.resolve()


def parse_mounts(values: tuple[str, ...]) -> dict[str, str]:
    """``NAME=PATH`` pairs as a mapping.

    Raises
    ------
    CliError
        (exit 2) For a value without ``=`` or with an empty name or path.
    """
    mounts: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise usage(f"--mount {value!r}: expected NAME=PATH, e.g. --mount inputs=/data/inputs")
        mounts[name.strip()] = str(Path(path.strip()).expanduser())
    return mounts


def default_run_dir(db_path: Path) -> str:
    """The run directory next to ``db_path`` (see the module docstring)."""
    home = db_path.parent
    if (home / "consist_runs").is_dir():
        return str(home)
    try:
        found = [d for d in home.iterdir() if (d / "consist_runs").is_dir()]
    except OSError:
        found = []
    return str(found[0]) if len(found) == 1 else str(home)


def lock_timeout(options: StoreOptions) -> float:
    """Seconds to wait for a store another process holds."""
    if options.lock_timeout is not None:
        return options.lock_timeout
    env = os.environ.get("CONSIST_LOCK_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError:
            raise usage(f"CONSIST_LOCK_TIMEOUT={env!r} is not a number of seconds") from None
    return DEFAULT_LOCK_TIMEOUT_S


@contextmanager
def store_errors(db_path: Path | str, timeout: float) -> Iterator[None]:
    """Turn the store's own errors into one-line CLI errors with their exit codes."""
    from consist.core.store.connection import StoreLockTimeout

    try:
        yield
    except StoreLockTimeout:
        raise CliError(
            f"store {db_path} stayed locked by another process for {timeout:g} s; retry when "
            "it is done, or wait longer with --lock-timeout SECONDS",
            LOCKED,
        ) from None
    except PermissionError as exc:
        raise CliError(
            f"cannot read store {db_path} ({exc.strerror or exc}); check the file's "
            "permissions or pass another --db-path",
            NO_STORE,
        ) from None


def open_tracker(options: StoreOptions, *, write: bool = False) -> Tracker:
    """A tracker over the store (read-only unless ``write``).

    Raises
    ------
    CliError
        (exit 3) Missing, unreadable or foreign store; (exit 4) locked.
    """
    from consist.core.tracker import Tracker

    db_path = resolve_db_path(options)
    mounts = parse_mounts(options.mounts)
    run_dir = options.run_dir or os.environ.get("CONSIST_RUN_DIR") or default_run_dir(db_path)
    timeout = lock_timeout(options)
    with store_errors(db_path, timeout):
        try:
            tracker = Tracker(
                run_dir=run_dir,
                db_path=db_path,
                mounts=mounts,
                project_root=run_dir,
                read_only=not write,
                idle_release_s=0,
                lock_timeout_s=timeout,
            )
            tracker.store.schema_version()  # reach the file now: errors surface here
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc), NO_STORE) from None
    return tracker

"""Finding and opening the store a command works on.

Discovery, in order: ``--db-url`` (a PostgreSQL store, team mode),
``--db-path`` (a DuckDB file), the ``CONSIST_DB_URL`` environment variable,
the ``CONSIST_DB`` environment variable, then ``./provenance.duckdb``: an
option given on the command line always beats the environment, and a team
URL in the environment beats a DuckDB file in it. ``--db-url`` and
``--db-path`` together are refused (exit 2). The run directory (where
relative artifact paths resolve and the JSON journal lives) is
``--run-dir``, then ``CONSIST_RUN_DIR``, then the store's own directory if
it holds the journal (``consist_runs/``), else the one subdirectory of it
that does (the usual ``project/provenance.duckdb`` + ``project/runs/``
layout), else the store's directory; for a PostgreSQL store the current
directory takes the store's directory's place. ``--mount NAME=PATH``
(repeatable) maps the mounts that recorded URIs name (``inputs://...``).

Read commands open the store read-only (nothing is written, not even a
directory) and hand the file back after every query, so a command never
holds the lock longer than a query; commands that change the store say so
and open it for writing. ``--lock-timeout`` times the wait for a DuckDB file
and is refused with a PostgreSQL store (``CONSIST_LOCK_TIMEOUT`` is not
used there).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from consist.cli.errors import LOCKED, NO_STORE, USAGE, CliError, usage

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
    db_url: str | None = None

    def overridden_by(
        self,
        *,
        db_path: str | None = None,
        run_dir: str | None = None,
        mounts: list[str] | None = None,
        lock_timeout: float | None = None,
        json: bool = False,
        db_url: str | None = None,
    ) -> StoreOptions:
        """These options with the ones given on the command itself taking precedence."""
        return replace(
            self,
            db_path=db_path or self.db_path,
            db_url=db_url or self.db_url,
            run_dir=run_dir or self.run_dir,
            mounts=self.mounts + tuple(mounts or ()),
            lock_timeout=lock_timeout if lock_timeout is not None else self.lock_timeout,
            json=json or self.json,
        )


@dataclass(frozen=True)
class StoreTarget:
    """The store a command uses: a DuckDB file or a PostgreSQL database.

    Attributes
    ----------
    db_path:
        The DuckDB file (None for a PostgreSQL store).
    db_url:
        The PostgreSQL URL as given, password included (None for DuckDB).
    source:
        Where it came from: ``--db-url``, ``--db-path``, ``CONSIST_DB_URL``,
        ``CONSIST_DB`` or ``the default``.
    """

    db_path: Path | None
    db_url: str | None
    source: str

    @property
    def label(self) -> str:
        """The store for messages: the file, or the URL without its password."""
        if self.db_url is None:
            return str(self.db_path)
        from consist.core.store.engines.postgres import redact

        return redact(self.db_url)


def resolve_store(options: StoreOptions) -> StoreTarget:
    """The store this command uses (see the module docstring for the order).

    Raises
    ------
    CliError
        (exit 2) For ``--db-url`` with ``--db-path``, or a URL that is not a
        PostgreSQL URL with a host and a database; (exit 3) for a DuckDB
        file that does not exist.
    """
    postgres = resolve_url(options)
    if postgres is not None:
        return postgres
    source = (
        "--db-path"
        if options.db_path
        else "CONSIST_DB"
        if os.environ.get("CONSIST_DB")
        else "the default"
    )
    return StoreTarget(resolve_db_path(options), None, source)


def resolve_url(options: StoreOptions) -> StoreTarget | None:
    """The PostgreSQL store this command uses, or None when it uses a DuckDB file.

    Raises
    ------
    CliError
        (exit 2) As :func:`resolve_store`.
    """
    if options.db_url and options.db_path:
        raise usage(
            f"--db-url and --db-path are both given ({options.db_url.split('://', 1)[0]}://... "
            f"and {options.db_path}): a store is either a PostgreSQL database (--db-url) or a "
            "DuckDB file (--db-path); drop one"
        )
    if options.db_url:
        return StoreTarget(None, _checked_url(options.db_url, "--db-url"), "--db-url")
    if not options.db_path and os.environ.get("CONSIST_DB_URL"):
        url = _checked_url(os.environ["CONSIST_DB_URL"], "CONSIST_DB_URL")
        return StoreTarget(None, url, "CONSIST_DB_URL")
    return None


def _checked_url(value: str, name: str) -> str:
    from consist.core.tracker_config import check_db_url

    try:
        return check_db_url(value, name)
    except ValueError as exc:
        raise usage(str(exc)) from None


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
    return run_dir_in(db_path.parent)


def run_dir_in(home: Path) -> str:
    """``home`` if it holds ``consist_runs/``, else its one subdirectory that does, else it."""
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
    """A tracker over the store :func:`resolve_store` finds (read-only unless ``write``).

    Raises
    ------
    CliError
        (exit 3) Missing, unreadable, unreachable or foreign store; (exit 4)
        locked; (exit 2) bad store options (see :func:`resolve_store`).
    """
    from consist.core.tracker import Tracker

    target = resolve_store(options)
    if target.db_url is not None:
        return _open_postgres(options, target, write=write)
    db_path = target.db_path
    assert db_path is not None
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


def _open_postgres(options: StoreOptions, target: StoreTarget, *, write: bool) -> Tracker:
    """A tracker over the PostgreSQL store of ``target`` (read-only unless ``write``)."""
    from consist.core.tracker import Tracker

    if options.lock_timeout is not None:
        raise usage(
            f"--lock-timeout times the wait for a DuckDB file; the store is a PostgreSQL "
            f"database ({target.source} {target.label}) with no file to wait for: drop "
            "--lock-timeout"
        )
    mounts = parse_mounts(options.mounts)
    run_dir = options.run_dir or os.environ.get("CONSIST_RUN_DIR") or run_dir_in(Path.cwd())
    where = f"{target.source} {target.label}"
    try:
        tracker = Tracker(
            run_dir=run_dir,
            db_url=target.db_url,
            mounts=mounts,
            project_root=run_dir,
            read_only=not write,
        )
        tracker.store.schema_version()  # reach the server now: errors surface here
    except ImportError as exc:
        raise CliError(f"{where}: {_one_line(exc)}", NO_STORE) from None
    except ConnectionError as exc:
        raise CliError(
            f"cannot reach the PostgreSQL store ({where}): {_one_line(exc)}; check the server "
            "and the URL",
            NO_STORE,
        ) from None
    except ValueError as exc:
        raise CliError(f"{where}: {_one_line(exc)}", NO_STORE) from None
    return tracker


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def not_on_postgres(
    command: str, target: StoreTarget, exc: BaseException | None = None
) -> CliError:
    """The error for a command a PostgreSQL store does not support yet.

    Parameters
    ----------
    command:
        The command as typed after ``consist`` (``"db inspect"``).
    target:
        The PostgreSQL store the command was pointed at.
    exc:
        The tracker's ``NotImplementedError``, whose first clause names the
        unsupported method.
    """
    detail = ""
    if exc is not None:
        feature = str(exc).split(" is not supported", 1)[0].strip()
        if feature and feature != str(exc).strip():
            detail = f" (it uses {feature})"
    return CliError(
        f"`consist {command}` is not supported yet with a PostgreSQL store "
        f"(--db-url / CONSIST_DB_URL; here {target.source} {target.label}){detail}; "
        "run it on a DuckDB store with --db-path FILE",
        USAGE,
    )

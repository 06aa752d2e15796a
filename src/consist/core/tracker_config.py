"""TrackerConfig: the typed, validated construction options of a Tracker."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

HashingStrategy = Literal["full", "fast"]


class TrackerConfig(BaseModel):
    """Everything needed to construct a :class:`~consist.core.tracker.Tracker`.

    Attributes
    ----------
    run_dir:
        Root of this tracker's workspace: per-run outputs under
        ``run_dir/outputs``, the journal under ``run_dir/consist_runs``.
    db_path:
        DuckDB file for the queryable store; ``None`` runs journal-only (query
        methods then return empty results, and ``run_query`` raises).
    db_url:
        Team mode: a PostgreSQL database as the store instead of a DuckDB
        file, e.g. ``"postgresql+psycopg://user@host:5432/consist"`` (only
        ``postgresql://`` and ``postgresql+psycopg://`` URLs; the database
        must exist, its tables are created on first use; exclusive with
        ``db_path``). Every process and machine pointing at it shares one
        store: a run is committed in its own transaction and visible to all
        readers when ``run()`` returns. Nothing is kept beside the database:
        the journal stays under ``run_dir``. Needs
        ``pip install 'consist[postgres]'`` (psycopg 3, SQLAlchemy 2) and a
        PostgreSQL 13 or later server. Ingested tables and views live on
        the server (views cover ingested artifacts only). The DuckDB file
        timings ``lock_timeout_s``, ``idle_release_s`` and ``max_hold_s``
        are refused with ``db_url``.
    mounts:
        Named roots, e.g. ``{"inputs": "/data/inputs"}``; paths below them are
        recorded as ``inputs://...`` so a store survives moving machines.
    schemas:
        SQLModel classes to register (looked up by class name).
    project_root:
        Directory whose source code identifies a run's code (git repository).
    hashing_strategy:
        ``"full"`` (default): BLAKE3 of the bytes, with a stat cache that
        never trusts an entry an in-place edit could hide. ``"fast"``: digest
        of file metadata only (device, inode, size, mtime, ctime), labelled
        ``stat:`` -- faster for huge inputs but blind to an edit that keeps
        all of those; use only where that risk is acceptable.
    allow_external_paths:
        Allow writing (``artifact_dir``, materialisation) outside ``run_dir``
        and the mounts.
    run_subdir_fn:
        Callable ``Run -> relative dir`` naming each run's artifact directory
        under ``run_dir/outputs`` (default ``<model>/<run_id>``).
    lock_timeout_s:
        How long to wait while another process holds the database file.
    idle_release_s:
        Give the database file back to other processes after this long idle.
    max_hold_s:
        Give it back at least this often while busy, so that processes
        sharing a store take turns.
    stat_cache_min_bytes:
        Files at least this large are remembered in the stat cache; smaller
        ones are simply re-read.
    code_identity_source_suffixes:
        Suffixes of *untracked* files that count as code in the git code
        identity (case-insensitive), e.g. ``[".py", ".R", ".jl"]``. ``None``
        (default) uses
        :data:`~consist.core.identity.code_identity_sources.DEFAULT_SOURCE_SUFFIXES`
        (Python, Cython, R, Julia, MATLAB, Java, Scala, Kotlin, C, C++,
        Fortran, Rust, Go, shell, SQL). Tracked files count whatever their
        suffix; untracked files with other suffixes are never read. Override
        per run with ``CacheOptions(code_identity_source_suffixes=...)``.
    read_only:
        Open an existing store for reading only (default False): the DuckDB
        file is opened read-only, nothing is created or written (no
        ``run_dir``, no lock file, no journal replay), and every call that
        would record something (``run``, ``begin_run``, ``start_run``,
        ``trace``, ``log_*``) raises
        :class:`~consist.core.store.connection.ReadOnlyStoreError` naming
        ``read_only`` before anything is written. For stores on read-only
        media or shared archives; a store on a full disk can also be opened
        normally for reading. Runs that only the journal holds (a writer
        that crashed before its database commit) are replayed by the next
        read-write opener, not by a read-only one.
    single_flight:
        When several processes (or trackers) reach the same cache signature
        at once, one computes it and the others wait, then hit its result
        (default True). A claim is a ``flock`` on a file in
        ``<db_path>.claims/`` (with ``db_url``: a PostgreSQL advisory lock
        held by a session of the claiming process, on any machine); a holder
        that dies releases it, and the next waiter computes. Only cacheable
        runs claim (a database, a signature, ``cache_mode="reuse"``).
    single_flight_timeout:
        Seconds a waiter waits for another holder of its signature before
        raising :class:`~consist.core.store.single_flight.SingleFlightTimeout`
        (a ``TimeoutError``, raised before anything is written). None
        (default): as long as the holder runs.
    blob_store:
        Team mode: a content-addressed store for output files, an fsspec URL
        such as ``"s3://bucket/prefix"`` or a local directory path (default
        None: none). A run that executed uploads its output files, keyed by
        their BLAKE3 digest, once it is recorded (an upload failure warns and
        is recorded in ``run.meta["blob_upload_failed"]``; the run stays
        recorded). A cache hit whose output files are missing here (another
        machine, another ``run_dir``) fetches them to where they resolve in
        this ``run_dir`` (``cache_hydration="outputs-all"``: into the new
        run's folder) and verifies each digest; an object whose bytes do not
        match is refused and removed, and the step executes again. Needs
        ``pip install 'consist[blobs]'`` (fsspec, s3fs).
    blob_store_options:
        fsspec storage options for ``blob_store`` (e.g. for S3
        ``{"client_kwargs": {"endpoint_url": ...}, "key": ..., "secret": ...}``);
        None: fsspec's usual configuration (environment, ``~/.aws``).
        Requires ``blob_store``.

    ``blob_store`` requires ``hashing_strategy="full"``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    run_dir: Path
    db_path: Path | None = None
    db_url: str | None = None
    mounts: dict[str, Path] = Field(default_factory=dict)
    schemas: tuple[Any, ...] = ()
    project_root: Path = Path(".")
    hashing_strategy: HashingStrategy = "full"
    allow_external_paths: StrictBool = False
    run_subdir_fn: Callable[..., Any] | None = None
    lock_timeout_s: float = Field(default=120.0, gt=0)
    idle_release_s: float = Field(default=0.25, ge=0)
    max_hold_s: float = Field(default=2.0, gt=0)
    stat_cache_min_bytes: int = Field(default=1 << 20, ge=0)
    code_identity_source_suffixes: frozenset[str] | None = None
    read_only: StrictBool = False
    single_flight: StrictBool = True
    single_flight_timeout: float | None = Field(default=None, gt=0)
    blob_store: str | None = None
    blob_store_options: dict[str, Any] | None = None

    @field_validator("run_dir", "project_root", mode="before")
    @classmethod
    def _path_like(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a non-empty path")
        return value

    @field_validator("mounts", mode="before")
    @classmethod
    def _mounts(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for name, root in value.items():
                if isinstance(root, str) and not root.strip():
                    raise ValueError(f"mount {name!r} has an empty root; give a directory path")
        return value

    @field_validator("schemas", mode="before")
    @classmethod
    def _schemas(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, type):
            raise ValueError("schemas must be a list of SQLModel classes, not a single class")
        value = tuple(value)
        sqlmodel = sys.modules.get("sqlmodel")
        for schema in value:
            if not isinstance(schema, type):
                raise ValueError(f"schemas must contain classes, got {schema!r}")
            if sqlmodel is not None and not issubclass(schema, sqlmodel.SQLModel):
                raise ValueError(f"schemas must contain SQLModel classes, got {schema.__name__}")
        names = [s.__name__ for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schemas registers the class name(s) {dupes} more than once")
        return value

    @field_validator("code_identity_source_suffixes", mode="before")
    @classmethod
    def _source_suffixes(cls, value: Any) -> Any:
        if value is None:
            return None
        from consist.core.identity.code_identity_sources import normalize_suffixes

        return normalize_suffixes(value, "code_identity_source_suffixes")

    @field_validator("blob_store", mode="before")
    @classmethod
    def _blob_store(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                "must be a URL such as 's3://bucket/prefix', a local directory path, or None"
            )
        if "://" in value:
            try:
                import fsspec
            except ImportError as exc:
                raise ImportError("blob_store needs fsspec: pip install 'consist[blobs]'") from exc
            protocol = value.split("://", 1)[0]
            try:
                fsspec.get_filesystem_class(protocol)
            except ImportError as exc:
                raise ImportError(
                    f"blob_store={value!r} needs a package for {protocol!r}: "
                    "pip install 'consist[blobs]'"
                ) from exc
            except ValueError as exc:
                raise ValueError(f"unknown protocol {protocol!r} ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _blob_options_need_store(self) -> TrackerConfig:
        if self.blob_store_options is not None and self.blob_store is None:
            raise ValueError(
                "blob_store_options is given without blob_store; set blob_store "
                "('s3://bucket/prefix' or a directory) or drop blob_store_options"
            )
        if self.blob_store is not None and self.hashing_strategy != "full":
            raise ValueError(
                "blob_store needs content digests: use hashing_strategy='full' (the default); "
                "'fast' (stat) digests cannot address content"
            )
        return self

    @field_validator("db_path", mode="before")
    @classmethod
    def _db_path(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a file path or None (an empty string is not allowed)")
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                f"{value.split('://', 1)[0]}:// is a URL, not a DuckDB file path; "
                "a PostgreSQL store is given as db_url=..."
            )
        if os.fspath(value) == ":memory:":
            raise ValueError(
                "':memory:' is not supported: the store must be a file that survives the process"
            )
        return value

    @field_validator("db_url", mode="before")
    @classmethod
    def _db_url(cls, value: Any) -> Any:
        if value is None:
            return None
        return check_db_url(value)

    @model_validator(mode="after")
    def _db_url_alone(self) -> TrackerConfig:
        if self.db_url is None:
            return self
        if self.db_path is not None:
            raise ValueError(
                "db_path and db_url are both given: a tracker's store is either a DuckDB file "
                "(db_path) or a PostgreSQL database (db_url); drop one"
            )
        timings = sorted({"lock_timeout_s", "idle_release_s", "max_hold_s"} & self.model_fields_set)
        if timings:
            raise ValueError(
                f"{', '.join(timings)} time the hand-over of a DuckDB file (db_path); a "
                "PostgreSQL store (db_url) has no file to hand over: drop them"
            )
        return self


_DB_URL_SCHEMES = ("postgresql", "postgresql+psycopg")


def check_db_url(value: Any, name: str = "db_url") -> str:
    """Validate a PostgreSQL store URL; return it.

    Raises
    ------
    ValueError
        Naming ``name``, unless ``value`` is a ``postgresql://`` or
        ``postgresql+psycopg://`` URL with a host and a database name.
    """
    from urllib.parse import urlsplit

    if not isinstance(value, str) or "://" not in value:
        raise ValueError(
            f"{name} must be a PostgreSQL URL such as "
            f"'postgresql+psycopg://user@host:5432/dbname', got {value!r}"
        )
    scheme = value.split("://", 1)[0]
    if scheme.lower() not in _DB_URL_SCHEMES:
        raise ValueError(
            f"{name}: {scheme}:// is not supported; give a 'postgresql://' or "
            "'postgresql+psycopg://' URL (psycopg 3), or a DuckDB file as db_path"
        )
    parts = urlsplit(value)
    if not parts.hostname and "host=" not in (parts.query or ""):
        raise ValueError(f"{name} names no host: 'postgresql+psycopg://user@host:5432/dbname'")
    if not parts.path.strip("/"):
        raise ValueError(f"{name} names no database: add '/dbname' after the host")
    return value

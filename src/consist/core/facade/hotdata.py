"""Hot-data methods of the Tracker (ingest, log_dataframe, validate_artifacts).

Mixed into :class:`~consist.core.tracker.Tracker`. The work is done by
:class:`~consist.core.hot.ingest.IngestService` (what to ingest, which schema,
which run) and :class:`~consist.core.store.hot_store.HotStore` (all SQL);
table conventions are documented in :mod:`consist.core.store.hot_tables`.
Checking recorded files against their digests is
:class:`~consist.core.run.artifact_check.ArtifactChecker`.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consist.core.hot.ingest import IngestResult, IngestService, check_schema, validate_frame
from consist.core.identity.hashing import ContentHasher
from consist.core.paths import PathResolver
from consist.core.run.artifact_check import (
    ArtifactChecker,
    ValidationReport,
    availability_patches,
)
from consist.core.run.artifacts import ArtifactBuilder, validate_direction, validate_key
from consist.core.run.lifecycle import RunLifecycle
from consist.core.store.connection import all_cores
from consist.core.store.engines import on_postgres
from consist.core.store.hot_store import HotStore, ingest_meta
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import Artifact
from consist.models.run import Run

DATAFRAME_DRIVERS = ("parquet", "csv")
_EXTENSIONS = {"parquet": "parquet", "csv": "csv"}
# log_artifact parameters that must not arrive through log_dataframe(meta=...).
_LOG_ARTIFACT_PARAMS = frozenset(
    {
        "path",
        "key",
        "direction",
        "schema",
        "driver",
        "table_path",
        "array_path",
        "content_hash",
        "force_hash_override",
        "validate_content_hash",
        "reuse_if_unchanged",
        "reuse_scope",
        "profile_file_schema",
        "file_schema_sample_rows",
        "facet",
        "facet_schema_version",
        "facet_index",
    }
)


class TrackerHotData:
    """Hot-data methods of the Tracker (ingest, log_dataframe, validate_artifacts)."""

    store: MetadataStore | None
    lifecycle: RunLifecycle
    paths: PathResolver
    run_dir: Path
    hasher: ContentHasher
    artifacts: ArtifactBuilder

    @property
    def hot_data_store(self) -> HotStore | None:
        """The hot store over ``global_tables`` (None without a database).

        Shares the metadata store's connection manager, so locking and idle
        release apply to ingested data too. On a PostgreSQL store (``db_url``)
        it is :class:`~consist.core.store.engines.pg_hot.PgHotStore`: the
        tables are the server's.
        """
        store = self.store
        if store is None:
            return None
        cached = self.__dict__.get("_hot_data_store")
        if cached is None or cached.connections is not store.connections:
            kind: type[HotStore] = HotStore
            if on_postgres(store):  # team mode: global_tables on the server
                from consist.core.store.engines.pg_hot import PgHotStore

                kind = PgHotStore
            cached = kind(store.connections, before_write=store.flush)
            self.__dict__["_hot_data_store"] = cached
        return cached

    @property
    def dlt_dir(self) -> Path:
        """Where dlt keeps pipelines and staging files: ``<run_dir>/.consist/dlt``."""
        return self.run_dir / ".consist" / "dlt"

    def ingest(
        self,
        artifact: Artifact,
        data: Any = None,
        schema: type | None = None,
        run: Run | None = None,
        profile_schema: bool = True,
        table: str | None = None,
    ) -> IngestResult:
        """Ingest an artifact's rows into the table ``global_tables.<table>`` of the store.

        On a DuckDB store the table is in the DuckDB file; on a PostgreSQL
        store (``db_url``) it is a table of the server's ``global_tables``
        schema, loaded with ``COPY`` (types as documented in
        :mod:`consist.core.store.engines.pg_hot`: nested values become
        JSONB, nanosecond timestamps are rounded to microseconds).

        Rows get the provenance columns ``consist_run_id``,
        ``consist_artifact_id``, ``consist_year`` and ``consist_iteration``.
        The table is the schema's ``__tablename__`` when the rows are
        validated against a schema (explicit or registered; SQLModel's
        default is the class name in lower case), so that
        ``tracker.view(Schema)`` shows them; otherwise the artifact key.
        The name has non-word characters replaced by ``_``, ``_`` before a
        leading digit, and is lower-cased. One table accumulates the rows of
        every run; a new column in the data is added to the table.
        Ingesting the same artifact again replaces its rows (never
        duplicates them). The artifact's metadata records ``is_ingested``,
        ``ingested_table``, ``ingested_rows`` and ``ingested_run_id``.

        Parameters
        ----------
        artifact : Artifact
            The artifact whose rows to ingest. Its key names the table when
            no schema applies.
        data : DataFrame | Iterable[dict] | None
            None: read the artifact's parquet/csv/json file natively with
            DuckDB (streamed, types as in the file; the fastest path). A
            pandas/polars DataFrame or pyarrow Table is scanned in place by
            DuckDB. Any other iterable of dict rows (list, generator) is
            loaded with dlt (needs ``pip install 'consist[ingest]'``): types
            are inferred, new keys become new columns, nested values are
            stored as JSON.
        schema : type[SQLModel] | None
            Validate strictly against this SQLModel class: every column of
            the data must be a field, every field without a default must be
            a column (fields with a default are filled with it), values must
            convert to the field types without loss and non-Optional fields
            may not hold NULLs. Columns are stored with the field types.
            Default: the registered schema named by
            ``artifact.meta["schema_name"]`` (set by
            ``log_artifact(..., schema=...)``), else no validation. The
            schema's ``__tablename__`` names the table.
        run : Run | None
            Offline mode: tag the rows with this run. None (online mode):
            the active run.
        profile_schema : bool
            Profile the ingested table's schema afterwards (when schema
            profiling is available).
        table : str | None
            Write into ``global_tables.<table>`` instead of the table the
            schema or the key names (lower-case letters, digits and ``_``);
            rows of many artifacts can share one table this way.

        Returns
        -------
        IngestResult
            ``table`` ("global_tables.<name>"), ``rows``, ``mode``
            ("file", "dataframe" or "rows"), ``loader``, ``run_id``,
            ``replaced_rows``, ``added_columns`` and, for dict rows, dlt's
            ``load_info``. ``to_dict()`` gives a plain dict.

        Raises
        ------
        RuntimeError
            If the tracker has no database (``db_path``), or ``run`` is None
            and no run is active.
        TypeError
            If ``artifact``, ``data``, ``schema`` or ``run`` has the wrong type.
        ValueError
            If the rows do not match ``schema`` or the existing table's
            column types (an :class:`~consist.core.store.hot_store.IngestSchemaError`
            naming each column), or the artifact's driver cannot be read
            natively and ``data`` is None. Nothing is written.
        FileNotFoundError
            If ``data`` is None and the artifact's file is missing.
        ImportError
            If dict rows are given and dlt is not installed.
        """
        if not isinstance(artifact, Artifact):
            raise TypeError(f"artifact must be an Artifact, got {type(artifact).__name__}")
        hot = self.hot_data_store
        if hot is None:
            raise RuntimeError(
                "ingest needs a database: create the Tracker with db_path=... "
                "(ingested rows live in its global_tables schema)"
            )
        active = self.lifecycle.active
        if run is None:
            if active is None:
                raise RuntimeError(
                    "ingest needs an active run (call it inside start_run()/run()/trace()) or "
                    "run= a recorded Run to tag the rows with (offline mode)"
                )
            target, offline = active.run, False
        else:
            if not isinstance(run, Run):
                raise TypeError(f"run must be a Run or None, got {type(run).__name__}")
            target = run
            offline = active is None or active.run.id != run.id
        service = IngestService(
            hot,
            local_path=self.artifacts.local_path,  # type: ignore[attr-defined]
            schema_lookup=self.get_registered_schema,  # type: ignore[attr-defined]
            dlt_dir=self.dlt_dir,
        )
        # Writing and profiling the rows use every DuckDB thread, in one stretch.
        with all_cores(hot.connections):
            result = service.ingest(
                artifact, target, data=data, schema=schema, offline=offline, table=table
            )
            # The hot store already annotated the stored artifact row and its links;
            # mirror that in memory, then journal the active run once.
            touched = self._mirror_meta(
                artifact, ingest_meta(result.table_name, result.rows, result.run_id)
            )
            if profile_schema:
                touched = self._profile_after_ingest(artifact, result, hot) or touched
        if touched:
            self.lifecycle.flush()
        return result

    def log_dataframe(
        self,
        df: Any,
        key: str,
        schema: type | None = None,
        direction: str = "output",
        path: str | os.PathLike[str] | None = None,
        driver: str | None = None,
        meta: Mapping[str, Any] | None = None,
        profile_file_schema: bool | str = False,
        file_schema_sample_rows: int | None = 1000,
        **to_file_kwargs: Any,
    ) -> Artifact:
        """Write a DataFrame to a file, log it as an artifact, and ingest it when a schema is given.

        Parameters
        ----------
        df : pandas.DataFrame
            Data to persist.
        key : str
            Logical artifact key. Without ``path`` it is also the file stem
            of the default path, so it must be a single file name (no ``/``,
            ``\\``, NUL, not starting with ``.``, at most 200 bytes).
        schema : type[SQLModel] | None
            If given, the DataFrame is validated against it before anything
            is written, its name is stored as ``meta["schema_name"]``, and
            the written file is ingested (see :meth:`ingest`). Without a
            database the file is logged and ingestion is skipped with a
            warning.
        direction : str
            ``"output"`` (default) or ``"input"``.
        path : str | Path | None
            Where to write; default ``<run artifact dir>/<key>.<ext>``
            (``<run_dir>/outputs/<run_subdir>/...``). An explicit path is
            honoured wherever it points (also outside ``run_dir``).
            Missing directories are created.
        driver : str | None
            ``"parquet"`` or ``"csv"``; default from the extension of
            ``path``, else ``"parquet"``.
        meta : dict | None
            Extra artifact metadata.
        profile_file_schema : bool | str
            Profile the written file's schema (passed to ``log_artifact``).
        file_schema_sample_rows : int | None
            Rows to sample when profiling.
        **to_file_kwargs
            Passed to ``DataFrame.to_parquet`` / ``DataFrame.to_csv``
            (csv defaults to ``index=False``).

        Returns
        -------
        Artifact
            The logged artifact.

        Raises
        ------
        RuntimeError
            Outside an active run.
        ValueError
            If ``driver`` is unsupported, ``key``/``path``/``meta`` are
            invalid, or ``df`` does not match ``schema`` (nothing written).
        TypeError
            If ``df`` is not a pandas DataFrame.
        """
        active = self.lifecycle.require_active("log_dataframe")
        if not (type(df).__module__.startswith("pandas") and type(df).__name__ == "DataFrame"):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        # Without path= the key names the file; with it, the key is only recorded.
        validate_key(key, file_name=path is None)
        validate_direction(direction)
        driver = _dataframe_driver(driver, path)
        meta = _dataframe_meta(meta)
        if schema is not None:
            check_schema(schema)
            validate_frame(df, schema)  # before anything is written
        if path is None:
            target = active.artifact_dir / f"{key}.{_EXTENSIONS[driver]}"
        else:
            target = self.paths.user_write_path(path, param="path")  # honoured as named
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_frame(df, target, driver, to_file_kwargs)
        log_kwargs: dict[str, Any] = {}
        if profile_file_schema:
            log_kwargs["profile_file_schema"] = profile_file_schema
            log_kwargs["file_schema_sample_rows"] = file_schema_sample_rows
        artifact = self.log_artifact(  # type: ignore[attr-defined]
            target,
            key=key,
            direction=direction,
            schema=schema,
            driver=driver,
            **log_kwargs,
            **meta,
        )
        if schema is not None:
            if self.store is None:
                warnings.warn(
                    f"log_dataframe({key!r}, schema=...) without a database: the file was "
                    "logged but not ingested (create the Tracker with db_path= to ingest)",
                    UserWarning,
                    stacklevel=2,
                )
            else:
                self.ingest(artifact, schema=schema)
        return artifact

    def validate_artifacts(
        self,
        run_ids: Sequence[str] | None = None,
        fix: bool = False,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ValidationReport:
        """Check that recorded artifact files still exist and hold their recorded digests.

        Each artifact's URI is resolved with this tracker's ``run_dir`` and
        mounts. A file whose stat identity (device, inode, size, mtime, ctime)
        matches a trusted entry of the stat cache is judged by that entry
        without being read; every other file is read once and hashed.
        Nothing is written unless ``fix`` is True.

        Parameters
        ----------
        run_ids : list of str | None
            Check the inputs and outputs of these runs. None: every artifact
            in the store.
        fix : bool
            Record availability in the store: a missing artifact gets
            ``meta["missing_since"]`` (UTC ISO 8601 time of the first
            validation that found it gone; kept by later ones), an artifact
            whose file is back loses it. The flag is written to the artifact
            row and its run links (the run journals are not rewritten), and
            the digests learned while reading files are saved to the stat
            cache so the next validation does not read them again. Changed
            and unresolved artifacts are only reported.
        on_progress : callable | None
            ``on_progress(done, total)``, called before the first file and
            after every batch of files (for progress bars).

        Returns
        -------
        ValidationReport
            ``checks`` (one :class:`~consist.core.run.artifact_check.ArtifactCheck`
            per distinct artifact, with ``status`` ``"ok"``, ``"missing"``,
            ``"changed"``, ``"unresolved"`` (unknown mount) or ``"unhashed"``
            (no digest recorded; it exists)), ``counts`` by status, ``ok``
            (nothing missing, changed or unresolved), and with ``fix`` the
            ids it ``marked_missing`` and ``cleared``. ``to_dict()`` gives a
            plain dict.

        Raises
        ------
        RuntimeError
            If the tracker has no database (``db_path``).
        ValueError
            If ``fix`` is True on a read-only tracker, or ``run_ids`` is not
            a list of strings (nothing is checked).
        KeyError
            If a run in ``run_ids`` does not exist (nothing is checked).
        """
        store = self.store
        if store is None:
            raise RuntimeError(
                "validate_artifacts needs a database: create the Tracker with db_path=..."
            )
        if not isinstance(fix, bool):
            raise ValueError(f"fix must be True or False, got {fix!r}")
        if fix and store.read_only:
            raise ValueError(
                "validate_artifacts(fix=True) writes availability flags: open the tracker "
                "without read_only=True"
            )
        if run_ids is not None:
            if isinstance(run_ids, str) or not all(isinstance(r, str) for r in run_ids):
                raise ValueError(
                    f"run_ids must be a list of run id strings, got {run_ids!r}; e.g. "
                    "run_ids=['baseline_2030']"
                )
            run_ids = list(dict.fromkeys(run_ids))
            unknown = [r for r in run_ids if store.get_run(r) is None]
            if unknown:
                raise KeyError(f"no run(s) {unknown} in this store")
            found = [a for r in run_ids for a, _direction in store.get_run_artifacts(r)]
        else:
            total = store.table_counts()["artifact"]
            found = store.find_artifacts(limit=max(total, 1))[::-1]  # oldest first
        checker = ArtifactChecker(self.hasher, self.artifacts.local_path)
        checks = checker.check(found, on_progress)
        report = ValidationReport(checks=checks, run_ids=run_ids)
        if not fix:
            return report
        now = datetime.now(UTC).isoformat(timespec="seconds")
        patches = availability_patches(checks, now)
        hot = self.hot_data_store
        assert hot is not None  # a store implies a hot store
        for artifact_id, patch in patches.items():
            hot.annotate_artifact(artifact_id, patch)
        store.put_stat_entries(self.hasher.take_new_entries())
        report.checks = [
            replace(c, missing_since=patches[c.artifact_id]["missing_since"])
            if c.artifact_id in patches
            else c
            for c in checks
        ]
        report.fixed = True
        report.marked_missing = [i for i, p in patches.items() if p["missing_since"] is not None]
        report.cleared = [i for i, p in patches.items() if p["missing_since"] is None]
        return report

    # -- internals ---------------------------------------------------------------

    def _mirror_meta(self, artifact: Artifact, patch: dict[str, Any]) -> bool:
        """Merge ``patch`` into the in-memory artifact and the active run's copy of it.

        Returns whether the active run holds the artifact (its snapshot then
        needs journaling so that it agrees with the store).
        """
        artifact.meta.update(patch)
        active = self.lifecycle.active
        if active is None:
            return False
        touched = False
        for bucket in (active.record.inputs, active.record.outputs):
            for logged in bucket:
                if logged.id == artifact.id:
                    if logged is not artifact:
                        logged.meta.update(patch)
                    touched = True
        return touched

    def _profile_after_ingest(
        self, artifact: Artifact, result: IngestResult, hot: HotStore
    ) -> bool:
        """Call the schema-profiling hook, if present, and persist what it returns.

        The hook is ``_profile_ingested_table(artifact, table, *, schema=None)``
        returning metadata (``schema_id``, ``schema_summary``) for the artifact.
        """
        hook = getattr(self, "_profile_ingested_table", None)
        if not callable(hook):
            return False
        try:
            patch = hook(artifact, result.table, schema=result.schema)
            if isinstance(patch, Mapping) and patch:
                hot.annotate_artifact(artifact.id, dict(patch))
                return self._mirror_meta(artifact, dict(patch))
        except Exception as exc:  # the rows are committed; profiling is best effort
            warnings.warn(
                f"rows of {artifact.key!r} were ingested into {result.table}, but profiling "
                f"their schema failed: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
        return False


def _dataframe_driver(driver: str | None, path: str | os.PathLike[str] | None) -> str:
    if driver is None:
        if path is not None:
            name = os.fspath(path).lower()
            if name.endswith((".csv", ".csv.gz", ".tsv")):
                return "csv"
        return "parquet"
    if driver not in DATAFRAME_DRIVERS:
        raise ValueError(
            f"driver={driver!r} is not supported by log_dataframe; use one of "
            f"{', '.join(DATAFRAME_DRIVERS)}"
        )
    return driver


def _dataframe_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    clashes = sorted(k for k in meta if k in _LOG_ARTIFACT_PARAMS)
    if clashes:
        raise ValueError(
            f"meta has keys {clashes} that are log_dataframe/log_artifact parameters; "
            "pass them as arguments or rename them"
        )
    return dict(meta)


def _write_frame(df: Any, target: Path, driver: str, kwargs: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{target.name}")  # keeps the suffix
    try:
        if driver == "csv":
            kwargs.setdefault("index", False)
            df.to_csv(tmp, **kwargs)
        else:
            df.to_parquet(tmp, **kwargs)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

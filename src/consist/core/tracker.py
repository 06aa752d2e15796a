"""Tracker: the composition root of Consist; its public methods live in ``core/facade/``.

The tracker wires the services together (paths, hashing, journal, store, artifact
builder, run lifecycle); see ``README.md`` ("Layout") and ``DESIGN.md``.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from consist.core.facade.config import TrackerConfigPlans
from consist.core.facade.exports import TrackerExports
from consist.core.facade.facets import TrackerFacets
from consist.core.facade.formats import TrackerFormats
from consist.core.facade.hotdata import TrackerHotData
from consist.core.facade.lineage import TrackerLineage
from consist.core.facade.maintenance import TrackerMaintenance
from consist.core.facade.queries import TrackerQueries
from consist.core.facade.scenarios import TrackerScenarios
from consist.core.facade.shards import TrackerShards
from consist.core.facade.steps import TrackerSteps
from consist.core.facade.views import TrackerViews
from consist.core.identity.code_identity import CodeIdentityResolver
from consist.core.identity.hashing import ContentHasher, MemoryStatCache
from consist.core.identity.service import IdentityService
from consist.core.paths import PathResolver
from consist.core.run import context
from consist.core.run.active_run import ActiveRunCacheOptions
from consist.core.run.artifacts import ArtifactBuilder, ArtifactRequest, requests_from_mapping
from consist.core.run.cache import CacheService
from consist.core.run.hooks import HookRegistry
from consist.core.run.lifecycle import RunLifecycle
from consist.core.run.runner import StepRunner
from consist.core.store.connection import is_storage_error, while_waiting_for_the_file
from consist.core.store.engines.opening import open_store
from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.recovery import RecoveryReport, catch_up
from consist.core.store.store_identity import check_store_path
from consist.core.tracker_config import TrackerConfig
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run
from consist.options import refuse_unknown_tracker_options

ArtifactRef = str | os.PathLike | Artifact


class Tracker(
    TrackerSteps,
    TrackerQueries,
    TrackerFacets,
    TrackerLineage,
    TrackerScenarios,
    TrackerHotData,
    TrackerViews,
    TrackerMaintenance,
    TrackerShards,
    TrackerConfigPlans,
    TrackerFormats,
    TrackerExports,
):
    """Records runs and artifacts, answers cache lookups and provenance queries.

    Parameters
    ----------
    run_dir:
        Workspace root: run outputs go under ``run_dir/outputs`` and the JSON
        journal under ``run_dir/consist_runs``. Created if missing.
    db_path:
        DuckDB file of the queryable store. ``None`` records to the journal
        only; query methods then return empty results (``run_query`` raises).
    mounts:
        Named roots (``{"inputs": "/data"}``) used to record portable URIs.
    schemas:
        SQLModel classes to register by class name.
    project_root:
        Directory used for code identity (git state).
    hashing_strategy:
        ``"full"`` (content digests, default) or ``"fast"`` (file metadata).
    allow_external_paths:
        Allow writing outside ``run_dir`` and the mounts (default False).
    **options:
        Further :class:`~consist.core.tracker_config.TrackerConfig` fields (``run_subdir_fn``,
        ``lock_timeout_s``, ``idle_release_s``, ``max_hold_s``, ``stat_cache_min_bytes``,
        ``code_identity_source_suffixes``, ``read_only``).

    Raises
    ------
    ValueError
        For invalid options (naming the field), before anything is written;
        an unknown keyword that is a per-run option (``cache_mode``, ...) is
        named with the call it belongs to.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        db_path: str | os.PathLike[str] | None = None,
        mounts: Mapping[str, str | os.PathLike[str]] | None = None,
        schemas: list[type] | None = None,
        project_root: str | os.PathLike[str] = ".",
        hashing_strategy: str = "full",
        allow_external_paths: bool | None = None,
        **options: Any,
    ) -> None:
        refuse_unknown_tracker_options(options, TrackerConfig.model_fields)
        config = TrackerConfig(
            run_dir=run_dir,
            db_path=db_path,
            mounts=mounts,
            schemas=schemas,
            project_root=project_root,
            hashing_strategy=hashing_strategy,
            allow_external_paths=False if allow_external_paths is None else allow_external_paths,
            **options,
        )
        self._setup(config)

    @classmethod
    def from_config(cls, config: TrackerConfig) -> Tracker:
        """Construct a tracker from a :class:`TrackerConfig`."""
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"from_config expects a TrackerConfig, got {type(config).__name__}")
        tracker = cls.__new__(cls)
        tracker._setup(config)
        return tracker

    def _setup(self, config: TrackerConfig) -> None:
        self.config = config
        self.paths = PathResolver(
            config.run_dir, config.mounts, allow_external_paths=config.allow_external_paths
        )
        self.run_dir = self.paths.run_dir
        self.project_root = Path(os.path.abspath(config.project_root))
        self._schemas = MappingProxyType({s.__name__: s for s in config.schemas})
        if config.db_path is not None:  # a data file as db_path: refused before any write
            check_store_path(os.path.abspath(config.db_path))
        if not config.read_only:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.run_dir)
        self.recovery: RecoveryReport | None = None
        excluded = [self.run_dir]
        if config.db_path is not None:
            db_file = os.path.abspath(config.db_path)
            excluded += [db_file, db_file + ".wal"]
        self.code_identity = CodeIdentityResolver(
            self.project_root,
            exclude_paths=excluded,
            source_suffixes=config.code_identity_source_suffixes,
        )
        # Waiting for another process's turn at the store: compute the git
        # state meanwhile rather than after taking the file.
        with while_waiting_for_the_file(self.code_identity.prefetch):
            self.store: MetadataStore | None = open_store(
                db_path=config.db_path,
                db_url=config.db_url,
                lock_timeout_s=config.lock_timeout_s,
                idle_release_s=config.idle_release_s,
                max_hold_s=config.max_hold_s,
                read_only=config.read_only,
            )
        if self.store is not None and not config.read_only:  # read-only: nothing replayed
            self.recovery = _catch_up(self.store, self.journal)
        if self.store is not None:  # a dropped tracker hands its file back at once
            weakref.finalize(self, self.store.connections.release)
        self.db_path = self.store.db_path if self.store else None
        self.hasher = ContentHasher(
            self.store if self.store is not None else MemoryStatCache(),
            strategy=config.hashing_strategy,
            min_cached_bytes=config.stat_cache_min_bytes,
        )
        self.artifacts = ArtifactBuilder(self.paths, self.hasher, self.store)
        self.hooks = HookRegistry()
        self.identity = IdentityService(self.hasher, self.code_identity, self.store)
        self.cache = (
            CacheService(self.store, self.artifacts, self.hasher, is_ingested=self._is_ingested)
            if self.store is not None
            else None
        )
        self.lifecycle = RunLifecycle(
            journal=self.journal,
            store=self.store,
            paths=self.paths,
            hasher=self.hasher,
            artifacts=self.artifacts,
            hooks=self.hooks,
            identity=self.identity,
            cache=self.cache,
            allow_external_paths=config.allow_external_paths,
        )
        self.lifecycle.configure(config)
        self.runner = StepRunner(self.lifecycle, self)

    def __repr__(self) -> str:
        return f"Tracker(run_dir={str(self.run_dir)!r}, db_path={self.db_path!r})"

    def _is_ingested(self, artifact: Artifact) -> bool:
        """Whether the store holds ``artifact``'s rows (see ``ingest``)."""
        hot = self.hot_data_store
        return hot is not None and bool(hot.ingest_records(artifact_id=artifact.id))

    def close(self) -> None:
        """Commit queued writes and release the database file (re-opened on next use)."""
        if self.store is not None:
            self.store.connections.release()  # flushes queued snapshots first
        self.journal.close()

    @property
    def last_run(self) -> ConsistRecord | None:
        """The most recent completed/failed run record of this tracker, or None.

        After a cache hit, ``last_run.run`` is the new (hit) run and
        ``last_run.cached_run`` the completed run its outputs came from
        (None for a run that executed).
        """
        return self.lifecycle.last_record

    @property
    def current_run(self) -> Run | None:
        """The active run, or None."""
        active = self.lifecycle.active
        return active.run if active else None

    @property
    def is_cached(self) -> bool:
        """Whether the active run is a cache hit (False when no run is active)."""
        active = self.lifecycle.active
        return bool(active and active.cache_hit)

    @property
    def registered_schemas(self) -> Mapping[str, type]:
        """Read-only mapping of registered SQLModel class name -> class."""
        return self._schemas

    @property
    def engine(self) -> Any:
        """SQLAlchemy engine over the store, or None without a database."""
        return self.store.engine if self.store is not None else None

    # -- lifecycle --------------------------------------------------------------------

    def begin_run(
        self,
        run_id: str,
        model: str,
        config: dict[str, Any] | Any = None,
        inputs: list[ArtifactRef] | None = None,
        tags: list[str] | None = None,
        description: str | None = None,
        cache_mode: str = "reuse",
        *,
        artifact_dir: str | os.PathLike[str] | None = None,
        allow_external_paths: bool | None = None,
        facet: Any = None,
        facet_from: list[str] | None = None,
        hash_inputs: Any = None,
        code_identity: str | None = None,
        code_identity_extra_deps: list[str] | None = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool = True,
        **kwargs: Any,
    ) -> Run:
        """Start a run imperatively; pair with :meth:`end_run`.

        Parameters
        ----------
        run_id:
            Unique id (also the journal file name). An id already recorded is
            rejected: recorded runs are never overwritten.
        model:
            Model/process name (non-empty, at most 256 characters).
        config:
            Dict with string keys, or a pydantic model. Hashed into identity.
        inputs:
            Input paths or Artifacts (path keys default to the file stem).
        tags:
            List of labels.
        description:
            Free text.
        cache_mode:
            ``"reuse"``, ``"overwrite"`` or ``"readonly"``.
        artifact_dir:
            Per-run output directory; relative values go under
            ``run_dir/outputs``; absolute ones must stay in ``run_dir`` unless
            ``allow_external_paths``.
        allow_external_paths:
            Override the tracker setting for this run.
        facet, facet_from, facet_schema_version, facet_index:
            A small queryable summary of the config (dict/pydantic), keys
            copied from ``config``, its version, and whether to index it.
        hash_inputs:
            Paths or ``(name, path)`` tuples (config files or directories)
            folded into the config side of identity (``run.config_hash``)
            without being logged as inputs. Names starting with ``.`` inside
            a hashed directory are skipped. Digests are recorded in
            ``run.meta["hash_inputs"]``.
        code_identity, code_identity_extra_deps:
            ``"repo_git"``, ``"callable_module"`` or ``"callable_source"``,
            and extra files folded into a callable-scoped identity.
        **kwargs:
            ``year``, ``iteration``, ``stage``, ``phase``, ``parent_run_id``;
            the cache options ``cache_hydration``, ``validate_cached_outputs``,
            ``cache_version``, ``cache_epoch`` (or ``cache_options=``, see
            :class:`~consist.options.CacheOptions`) and ``output_missing``
            (``"warn"``, ``"error"``, ``"ignore"``: for outputs logged before
            their file existed that never appear); anything else is run
            metadata (size-limited, see
            ``CONSIST_MAX_METADATA_ITEMS/KEY_LENGTH/VALUE_LENGTH``).

        Returns
        -------
        Run
            The started run.

        Raises
        ------
        RuntimeError
            If a run is already active.
        TypeError, ValueError, FileNotFoundError
            For invalid arguments (an invalid cache option names its keyword)
            or missing input files, before anything is written.
        """
        request = self.lifecycle.prepare_begin(
            run_id,
            model,
            config=config,
            inputs=inputs,
            tags=tags,
            description=description,
            cache_mode=cache_mode,
            artifact_dir=artifact_dir,
            allow_external_paths=allow_external_paths,
            facet=facet,
            facet_from=facet_from,
            hash_inputs=hash_inputs,
            code_identity=code_identity,
            code_identity_extra_deps=code_identity_extra_deps,
            facet_schema_version=facet_schema_version,
            facet_index=facet_index,
            **kwargs,
        )
        request.hash_inputs_in_config = True
        return self.lifecycle.begin(request)

    def end_run(self, status: str = "completed", error: BaseException | None = None) -> Run:
        """Finish the active run: persist its final state and fire hooks.

        Parameters
        ----------
        status:
            ``"completed"`` (default) or ``"failed"``.
        error:
            The exception behind a failure; its text is stored in
            ``run.meta["error"]``.

        Returns
        -------
        Run
            The ended run. Calling again right after warns and returns the
            same run.

        Raises
        ------
        RuntimeError
            If no run has been started.
        """
        return self.lifecycle.end(status, error)

    @contextmanager
    def start_run(self, run_id: str, model: str, **kwargs: Any) -> Iterator[Tracker]:
        """Context manager around :meth:`begin_run` / :meth:`end_run`.

        An exception inside the block marks the run failed (with the error
        text) and is re-raised.
        """
        self.begin_run(run_id, model, **kwargs)
        token = context.set_current(self)  # for consist.output_path & co. in the block
        try:
            try:
                yield self
            except BaseException as exc:
                if self.lifecycle.active is not None:
                    self.end_run("failed", error=exc)
                raise
            if self.lifecycle.active is not None:
                self.end_run("completed")
        finally:
            context.reset(token)

    def log_meta(self, **kwargs: Any) -> None:
        """Merge metadata into the active run, flushed to journal and DB at once.

        Raises
        ------
        RuntimeError
            Outside an active run.
        """
        self.lifecycle.log_meta(**kwargs)

    def on_run_start(self, callback: Callable[[Run], None]) -> Callable[[Run], None]:
        """Register ``callback(run)`` for run start; usable as a decorator."""
        return self.hooks.add(self.hooks.on_start, callback, "start")

    def on_run_complete(
        self, callback: Callable[[Run, list[Artifact]], None]
    ) -> Callable[[Run, list[Artifact]], None]:
        """Register ``callback(run, outputs)`` for successful completion."""
        return self.hooks.add(self.hooks.on_complete, callback, "complete")

    def on_run_failed(
        self, callback: Callable[[Run, BaseException], None]
    ) -> Callable[[Run, BaseException], None]:
        """Register ``callback(run, exception)`` for failures."""
        return self.hooks.add(self.hooks.on_failed, callback, "failed")

    def set_run_subdir_fn(self, fn: Callable[[Run], str] | None) -> None:
        """Set (or clear with None) the callable naming each run's artifact subdirectory."""
        if fn is not None and not callable(fn):
            raise TypeError("set_run_subdir_fn expects a callable Run -> str, or None")
        self.lifecycle.run_subdir_fn = fn

    def run_artifact_dir(self, run: Run | None = None) -> Path:
        """The artifact directory of ``run`` (default: the active run).

        Raises
        ------
        RuntimeError
            If ``run`` is None and no run is active.
        """
        return self.lifecycle.artifact_dir_for(run)

    # -- artifacts ---------------------------------------------------------------------

    def log_artifact(
        self,
        path: ArtifactRef,
        key: str | None = None,
        direction: str = "output",
        schema: type | None = None,
        driver: str | None = None,
        table_path: str | None = None,
        array_path: str | None = None,
        content_hash: str | None = None,
        force_hash_override: bool = False,
        validate_content_hash: bool = False,
        reuse_if_unchanged: bool = False,
        reuse_scope: str = "same_uri",
        profile_file_schema: bool | str | None = None,
        file_schema_sample_rows: int | None = None,
        facet: Any = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool = False,
        **meta: Any,
    ) -> Artifact:
        """Log one file (or Artifact) as an input or output of the active run.

        Persisted immediately (journal, then DB). An input at the location of
        an earlier run's output is linked to that run only if its bytes still
        match. See the README for every parameter; ``content_hash`` trusts a
        precomputed digest (verified with ``validate_content_hash``), and
        ``force_hash_override`` replaces the hash of an existing Artifact.

        An output whose file does not exist yet may be logged: it is expected
        by the end of the run, hashed then (the returned Artifact is
        completed in place), and the run's ``output_missing`` policy applies
        if it never appears. During a cache hit, logging an output with the
        cached content returns the cached artifact; other content demotes
        the run to a miss with a warning (it becomes a new result).

        Returns
        -------
        Artifact
            The logged artifact (with ``.path`` resolved locally).

        Raises
        ------
        RuntimeError
            Outside an active run.
        ValueError
            If ``key`` is missing for a path, or another argument is invalid.
        FileNotFoundError
            If an input path does not exist and no ``content_hash`` is given,
            or an output to be profiled does not exist.
        """
        self.lifecycle.require_active("log_artifact")
        request = self._artifact_request(
            path,
            key,
            direction,
            schema=schema,
            driver=driver,
            table_path=table_path,
            array_path=array_path,
            content_hash=content_hash,
            force_hash_override=force_hash_override,
            validate_content_hash=validate_content_hash,
            reuse_if_unchanged=reuse_if_unchanged,
            reuse_scope=reuse_scope,
            profile_file_schema=profile_file_schema,
            facet=facet,
            facet_schema_version=facet_schema_version,
            facet_index=facet_index,
            meta=meta,
        )
        request.allow_pending = direction == "output" and not profile_file_schema and schema is None
        return self._log_profiled(request, profile_file_schema, file_schema_sample_rows, schema)

    def log_input(
        self,
        path: ArtifactRef,
        key: str | None = None,
        content_hash: str | None = None,
        force_hash_override: bool = False,
        validate_content_hash: bool = False,
        facet: Any = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool = False,
        **meta: Any,
    ) -> Artifact:
        """Log an input artifact (``log_artifact(direction="input")``)."""
        return self.log_artifact(
            path,
            key,
            direction="input",
            content_hash=content_hash,
            force_hash_override=force_hash_override,
            validate_content_hash=validate_content_hash,
            facet=facet,
            facet_schema_version=facet_schema_version,
            facet_index=facet_index,
            **meta,
        )

    def log_output(
        self,
        path: ArtifactRef,
        key: str | None = None,
        content_hash: str | None = None,
        force_hash_override: bool = False,
        validate_content_hash: bool = False,
        reuse_if_unchanged: bool = False,
        reuse_scope: str = "same_uri",
        facet: Any = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool = False,
        **meta: Any,
    ) -> Artifact:
        """Log an output artifact (``log_artifact(direction="output")``)."""
        return self.log_artifact(
            path,
            key,
            direction="output",
            content_hash=content_hash,
            force_hash_override=force_hash_override,
            validate_content_hash=validate_content_hash,
            reuse_if_unchanged=reuse_if_unchanged,
            reuse_scope=reuse_scope,
            facet=facet,
            facet_schema_version=facet_schema_version,
            facet_index=facet_index,
            **meta,
        )

    def log_artifacts(
        self,
        outputs: Mapping[str, ArtifactRef],
        direction: str = "output",
        driver: str | None = None,
        metadata_by_key: Mapping[str, dict[str, Any]] | None = None,
        facets_by_key: Mapping[str, Any] | None = None,
        facet_schema_versions_by_key: Mapping[str, str | int] | None = None,
        facet_index: bool = False,
        reuse_if_unchanged: bool = False,
        reuse_scope: str = "same_uri",
        **shared_meta: Any,
    ) -> dict[str, Artifact]:
        """Log many artifacts with one journal write and one DB transaction.

        Parameters
        ----------
        outputs:
            Mapping of key -> path/Artifact.
        direction:
            ``"input"`` or ``"output"``.
        driver:
            Driver for all entries (default: inferred per file).
        metadata_by_key:
            Per-key metadata applied over ``shared_meta``.
        facets_by_key, facet_schema_versions_by_key, facet_index:
            Per-key artifact facets (stored in artifact metadata).
        **shared_meta:
            Metadata applied to every artifact.

        Returns
        -------
        dict[str, Artifact]
            Key -> logged artifact.

        Raises
        ------
        RuntimeError
            Outside an active run.
        ValueError
            If ``metadata_by_key`` names keys absent from ``outputs``.
        TypeError
            If mapping keys are not strings.
        """
        self.lifecycle.require_active("log_artifacts")
        if reuse_scope not in ("same_uri", "any_uri"):
            raise ValueError("reuse_scope must be 'same_uri' or 'any_uri'")
        _warn_output_reuse(direction, reuse_if_unchanged, reuse_scope)
        facet_meta = _facet_meta_by_key(
            outputs, facets_by_key, facet_schema_versions_by_key, facet_index
        )
        requests = requests_from_mapping(
            outputs,
            direction,
            driver=driver,
            metadata_by_key=metadata_by_key,
            shared_meta=shared_meta,
            extra_meta_by_key=facet_meta,
        )
        for request in requests:
            request.allow_pending = direction == "output"
            if reuse_if_unchanged and direction == "input":
                request.reuse_scope = reuse_scope
        built = self.lifecycle.log_artifacts(requests, "log_artifacts")
        return {req.key or art.key: art for req, art in zip(requests, built, strict=True)}

    def _artifact_request(
        self,
        path: ArtifactRef,
        key: str | None,
        direction: str,
        *,
        schema: type | None,
        driver: str | None,
        table_path: str | None,
        array_path: str | None,
        content_hash: str | None,
        force_hash_override: bool,
        validate_content_hash: bool,
        reuse_if_unchanged: bool,
        reuse_scope: str,
        profile_file_schema: Any,
        facet: Any,
        facet_schema_version: Any,
        facet_index: bool,
        meta: dict[str, Any],
    ) -> ArtifactRequest:
        if profile_file_schema:
            # Validated here, before anything is written; the file is profiled
            # once the artifact is built (TrackerViews._log_profiled).
            from consist.core.hot.schema_profile import validate_profile_mode

            validate_profile_mode(profile_file_schema)
        if reuse_scope not in ("same_uri", "any_uri"):
            raise ValueError("reuse_scope must be 'same_uri' or 'any_uri'")
        _warn_output_reuse(direction, reuse_if_unchanged, reuse_scope)
        if content_hash is not None and not isinstance(content_hash, str):
            raise TypeError("content_hash must be a string digest, e.g. 'blake3:...'")
        meta = dict(meta)
        if schema is not None:
            meta["schema_name"] = getattr(schema, "__name__", str(schema))
        if facet is None and facet_schema_version is not None:
            raise ValueError(
                "facet_schema_version is set but no facet is given; pass facet=... "
                "(or drop facet_schema_version)"
            )
        if facet is not None:
            facet_meta = _facet_meta_by_key(
                {"_": path}, {"_": facet}, {"_": facet_schema_version}, facet_index
            )
            meta.update(facet_meta["_"])
        return ArtifactRequest(
            ref=path,
            key=key,
            direction=direction,
            driver=driver,
            table_path=table_path,
            array_path=array_path,
            content_hash=content_hash,
            force_hash_override=force_hash_override,
            validate_content_hash=validate_content_hash,
            meta=meta,
            reuse_scope=reuse_scope if reuse_if_unchanged and direction == "input" else None,
        )

    def resolve_uri(self, uri: str) -> str:
        """Convert a portable URI (``mount://...``, ``./...``) to an absolute path.

        Raises
        ------
        ValueError
            If a mounted or run_dir URI would escape its root.
        """
        return self.paths.resolve_uri(uri)

    def suspend_cache_options(self) -> ActiveRunCacheOptions:
        """Reset the active run's cache options to defaults; return the old ones."""
        active = self.lifecycle.require_active("suspend_cache_options")
        previous, active.cache = active.cache, ActiveRunCacheOptions()
        return previous

    def restore_cache_options(self, options: ActiveRunCacheOptions) -> None:
        """Restore options returned by :meth:`suspend_cache_options`."""
        if not isinstance(options, ActiveRunCacheOptions):
            raise TypeError(
                "restore_cache_options expects the value suspend_cache_options returned"
            )
        self.lifecycle.require_active("restore_cache_options").cache = options


def _catch_up(store: MetadataStore, journal: Journal) -> RecoveryReport:
    """Replay pending snapshots; on a full disk, warn and leave them for the next opener."""
    try:
        return catch_up(store, journal)
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        warnings.warn(
            f"could not replay pending journal snapshots into {store.db_path} ({exc}); "
            "they stay safe in the journal and are replayed when the store can be written",
            RuntimeWarning,
            stacklevel=4,
        )
        return RecoveryReport(errors={store.db_path: str(exc)})


def _warn_output_reuse(direction: str, reuse_if_unchanged: bool, reuse_scope: str) -> None:
    if direction == "output" and (reuse_if_unchanged or reuse_scope == "any_uri"):
        import warnings

        warnings.warn(
            "reuse_if_unchanged/reuse_scope are deprecated for outputs: a fresh output "
            "artifact is always recorded and identical bytes share artifact.content_id",
            DeprecationWarning,
            stacklevel=3,
        )


def _facet_meta_by_key(
    outputs: Mapping[str, Any],
    facets_by_key: Mapping[str, Any] | None,
    versions_by_key: Mapping[str, Any] | None,
    facet_index: bool,
) -> dict[str, dict[str, Any]]:
    if versions_by_key:
        stray = sorted(set(versions_by_key) - set(facets_by_key or {}))
        if stray:
            raise ValueError(
                f"facet_schema_versions_by_key names {stray}, which have no entry in "
                "facets_by_key; give them a facet or drop their version"
            )
    if not facets_by_key:
        return {}
    unknown = sorted(set(facets_by_key) - set(outputs))
    if unknown:
        raise ValueError(f"facets_by_key has keys not present in outputs: {unknown}")
    out: dict[str, dict[str, Any]] = {}
    for key, facet in facets_by_key.items():
        schema_name = None
        if hasattr(facet, "model_dump") and callable(facet.model_dump):
            schema_name = type(facet).__name__
            facet = facet.model_dump(mode="json")
        if not isinstance(facet, Mapping):
            raise TypeError(f"facet for {key!r} must be a dict or a pydantic model")
        entry: dict[str, Any] = {"facet": dict(facet), "facet_index": bool(facet_index)}
        if schema_name:
            entry["facet_schema_name"] = schema_name
        version = (versions_by_key or {}).get(key)
        if version is not None:
            entry["facet_schema_version"] = version
        out[key] = entry
    return out

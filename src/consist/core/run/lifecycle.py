"""The run lifecycle: begin, log, flush (journal then store), end.

:class:`RunLifecycle` owns the one active run. Every state change goes through
:meth:`RunLifecycle.flush`: the journal snapshot first, then the same snapshot
(plus the artifacts not yet synced) to the store in one transaction.
"""

from __future__ import annotations

import logging
import os
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from consist.core.identity.hash_inputs import digest_hash_inputs, fold_into_config_hash
from consist.core.identity.hashing import ContentHasher
from consist.core.identity.service import IdentityService
from consist.core.paths import PathResolver, default_run_subdir
from consist.core.run.active_run import ActiveRun
from consist.core.run.artifacts import ArtifactBuilder, ArtifactRequest
from consist.core.run.begin_request import BeginRequest, build_begin_request
from consist.core.run.cache import CacheHit, CacheService, explain_difference
from consist.core.run.hooks import HookRegistry
from consist.core.store.blob_store import BlobStore, BlobStoreError, blob_digest
from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.journal import Journal, JournalWriteError
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.overlapped_commit import Guard
from consist.core.store.single_flight import SignatureClaims
from consist.core.tracker_config import TrackerConfig
from consist.core.validation import (
    RESERVED_META_KEYS,
    validate_metadata,
    validate_optional_int,
    validate_optional_str,
)
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run, utc_now

logger = logging.getLogger("consist")

END_STATUSES = ("completed", "failed")


class RunLifecycle:
    """Begins, records and ends runs for one tracker.

    Parameters
    ----------
    journal, store, paths, hasher, artifacts, hooks, identity, cache:
        The collaborators (``store`` and ``cache`` are None without a database).
    allow_external_paths:
        Tracker-wide default for writing outside ``run_dir``.
    """

    def __init__(
        self,
        *,
        journal: Journal,
        store: MetadataStore | None,
        paths: PathResolver,
        hasher: ContentHasher,
        artifacts: ArtifactBuilder,
        hooks: HookRegistry,
        identity: IdentityService,
        cache: CacheService | None,
        allow_external_paths: bool,
    ) -> None:
        self.journal = journal
        self.store = store
        self.paths = paths
        self.hasher = hasher
        self.artifacts = artifacts
        self.hooks = hooks
        self.identity = identity
        self.cache = cache
        self.allow_external_paths = allow_external_paths
        self.run_subdir_fn: Callable[[Run], str] | None = None
        self.active: ActiveRun | None = None
        self.last_record: ConsistRecord | None = None
        self._last_ended_id: str | None = None
        # An ended run whose final snapshot could not be written (disk full):
        # written before the next run begins.
        self._unrecorded: ActiveRun | None = None
        self.read_only = False  # TrackerConfig.read_only: nothing is recorded
        self.claims: Any = None  # single-flight: SignatureClaims / PgSignatureClaims
        self.blobs: BlobStore | None = None  # TrackerConfig.blob_store (see configure)

    def configure(self, config: TrackerConfig) -> None:
        """Apply the tracker-wide settings: run folders, read-only, single-flight, blobs."""
        self.run_subdir_fn = config.run_subdir_fn
        self.read_only = config.read_only
        if config.blob_store is not None:
            self.blobs = BlobStore(config.blob_store, config.blob_store_options, hasher=self.hasher)
            if self.cache is not None:
                self.cache.blobs = self.blobs
        if config.single_flight and config.db_url is not None and not config.read_only:
            from consist.core.store.engines.pg_claims import PgSignatureClaims

            self.claims = PgSignatureClaims(config.db_url, config.single_flight_timeout)
        elif config.single_flight and config.db_path is not None and not config.read_only:
            folder = Path(f"{config.db_path}.claims")
            self.claims = SignatureClaims(folder, config.single_flight_timeout)

    # -- begin ----------------------------------------------------------------

    def prepare_begin(self, run_id: Any, model: Any, **arguments: Any) -> BeginRequest:
        """Validate every ``begin_run`` argument; writes nothing.

        The arguments are those of
        :func:`~consist.core.run.begin_request.build_begin_request`.

        Raises
        ------
        RuntimeError
            If a run is already active.
        TypeError, ValueError
            For any invalid argument, naming it.
        """
        if self.read_only:
            raise ReadOnlyStoreError.refusing("begin a run")
        if self.active is not None:
            raise RuntimeError(
                f"run {self.active.run.id!r} is still active; call end_run() before begin_run()"
            )
        return build_begin_request(
            run_id, model, **arguments, check_new_run_id=self._check_new_run_id
        )

    def begin(self, request: BeginRequest, *, defer_writes: bool = False) -> Run:
        """Start the validated run: inputs, identity, cache lookup, journal, store, hooks.

        Parameters
        ----------
        request:
            From :meth:`prepare_begin`.
        defer_writes:
            ``Tracker.run``: the run is written once, when it ends (one
            journal snapshot, one database transaction). A miss still notes
            its start in the pending ledger before the function executes, so
            a killed run leaves a trace (see ``Journal.note_started``).
        """
        run = request.run
        allow = (
            self.allow_external_paths
            if request.allow_external_paths is None
            else request.allow_external_paths
        )
        artifact_dir = self.planned_artifact_dir(request)
        if request.cache.cache_hydration == "inputs-missing" and self.cache is not None:
            self.cache.restore_missing_inputs(request.input_requests)
        inputs = self.artifacts.build(request.input_requests, run.id)
        # begin_run's hash_inputs are config kept in files: they join the
        # config side of identity (run/trace identity_inputs the input side).
        in_config = request.hash_inputs_in_config and bool(request.hash_inputs)
        container = request.container(inputs) if request.container is not None else None
        identity = self.identity.compute(
            model=run.model_name,
            config=request.config,
            inputs=inputs,
            identity_inputs=() if in_config else request.hash_inputs,
            fn=request.fn,
            code_identity=request.code_identity,
            code_identity_extra_deps=request.code_identity_extra_deps,
            code_identity_source_suffixes=request.code_identity_source_suffixes,
            year=run.year,
            iteration=run.iteration,
            cache_version=request.cache_version,
            cache_epoch=request.cache_epoch,
            run_id=run.id,
            code_exclude_dirs=request.config_roots,
            container=container,
        )
        config_side = digest_hash_inputs(self.hasher, request.hash_inputs) if in_config else {}
        config_side.update(request.config_digests)
        identity.config_hash = fold_into_config_hash(identity.config_hash, config_side)
        run.config_hash = identity.config_hash
        run.input_hash, run.signature = identity.digests()
        run.git_hash = identity.code_digest
        run.meta["artifact_dir"] = self.paths.virtualize(artifact_dir)
        run.meta["code_identity_mode"] = identity.code_mode
        if identity.identity_inputs or config_side:
            run.meta["hash_inputs"] = {**identity.identity_inputs, **config_side}
        if request.cache_version is not None:
            run.meta["cache_version"] = request.cache_version
        if request.cache_epoch is not None:
            run.meta["cache_epoch"] = request.cache_epoch
        manifest = identity.manifest(request.config)
        if config_side:
            manifest["identity_inputs"] = dict(sorted(config_side.items()))
            manifest["hash_inputs_in_config"] = True
        record = ConsistRecord(
            run=run, config=request.config, facet=request.facet, identity=manifest
        )
        active = ActiveRun(
            record=record,
            artifact_dir=artifact_dir,
            allow_external_paths=allow,
            cache=request.cache,
            persist=request.cache.cache_mode != "readonly",
            output_missing=request.output_missing,
        )
        for art in inputs:
            active.add_artifact(art, "input")
        self._decide_cache(active, manifest, request.output_paths)
        try:
            self._retry_unrecorded()
            # The run becomes active only once its start is written: a write that
            # fails (disk full) raises here and leaves no active run behind.
            if not defer_writes:
                self._persist(active)
            elif not active.cache_hit and active.persist:
                if self.store is not None:
                    self.journal.note_started(active.record)
                else:  # journal-only: the start snapshot is the trace
                    self.journal.write(active.record, pending=False, latest=False)
        except BaseException:
            _release_claim(active)
            raise
        self.active = active
        self.hooks.fire(self.hooks.on_start, "start", run)
        return run

    def _decide_cache(
        self, active: ActiveRun, manifest: dict[str, Any], output_paths: Mapping[str, Path]
    ) -> None:
        run = active.run
        mode = active.cache.cache_mode
        if run.signature is None:
            run.meta["cache_disabled"] = (
                "no code identity: "
                + str(manifest["code"]["details"].get("fallback_reason", "unavailable"))
                + " (run inside a git repository, or use tracker.run with a function)"
            )
            return
        if self.cache is None:
            return
        reason = None
        if mode != "overwrite":
            found = self.cache.lookup(run.signature, validate=active.cache.validate_cached_outputs)
            if found.hit is not None and self._hydrate(active, found.hit, output_paths):
                return
            if found.hit is None and self._claim(active):
                # Another process may have finished this signature between the
                # lookup and the claim (or while we waited): look again.
                validate = active.cache.validate_cached_outputs
                found = self.cache.lookup(run.signature, validate=validate, refuted=found.refuted)
                if found.hit is not None and self._hydrate(active, found.hit, output_paths):
                    _release_claim(active)
                    return
            reason = found.reason if found.hit is None else active.extra.get("hydration_error")
        nearest = self.cache.nearest(run.model_name, exclude_id=run.id)
        old_run, old_manifest = nearest if nearest else (None, None)
        explanation = explain_difference(old_run, old_manifest, manifest, lookup_reason=reason)
        if mode == "overwrite":
            explanation["cache_mode"] = "overwrite"
        run.meta["cache_miss_explanation"] = explanation

    def _claim(self, active: ActiveRun) -> bool:
        """Take the single-flight claim on the run's signature; True once it is held."""
        if self.claims is None or not active.persist or active.run.signature is None:
            return False
        active.extra["claim"] = self.claims.claim(active.run.signature)
        return True

    def _hydrate(self, active: ActiveRun, hit: CacheHit, output_paths: Mapping[str, Path]) -> bool:
        """Attach a hit's outputs to the run (copying them as the policy says)."""
        assert self.cache is not None
        outputs = dict(hit.outputs)
        policy = active.cache.cache_hydration or "metadata"
        try:
            destinations: Mapping[str, Path] = output_paths
            if policy == "outputs-all":
                destinations = {
                    key: active.artifact_dir / os.path.basename(art.abs_path or art.uri)
                    for key, art in outputs.items()
                }
            # Team mode: files missing here come from the blob store, verified.
            outputs.update(self.cache.fetch_missing(outputs, destinations))
            if policy == "outputs-requested" and output_paths:
                missing = sorted(set(output_paths) - set(outputs))
                if missing:
                    raise FileNotFoundError(f"the cached run has no outputs named {missing}")
                outputs.update(self.cache.copy_outputs(outputs, output_paths))
            elif policy == "outputs-all":
                outputs.update(self.cache.copy_outputs(outputs, destinations))
        except OSError as exc:
            active.extra["hydration_error"] = f"could not hydrate cached outputs: {exc}"
            return False
        active.cache_hit = True
        active.cached_outputs = outputs
        active.cached_run = hit.source
        active.run.meta["cache_hit"] = True
        active.run.meta["cache_source"] = hit.source.id
        active.run.meta["cache_hydration"] = policy
        # The cached outputs join the record when the run ends as a hit
        # (_finish_outputs): logging different content first demotes it.
        return True

    def planned_artifact_dir(self, request: BeginRequest) -> Path:
        """The output directory ``begin`` will give the run of ``request``."""
        allow = (
            self.allow_external_paths
            if request.allow_external_paths is None
            else request.allow_external_paths
        )
        return self.paths.resolve_artifact_dir(
            request.artifact_dir, self._subdir_for(request.run), allow_external_paths=allow
        )

    def _subdir_for(self, run: Run) -> str:
        if self.run_subdir_fn is None:
            return default_run_subdir(run.model_name, run.id)
        value = self.run_subdir_fn(run)
        if not isinstance(value, str | os.PathLike):
            raise TypeError(
                f"run_subdir_fn returned {type(value).__name__}; it must return a relative path"
            )
        return os.fspath(value)

    def _check_new_run_id(self, run_id: str) -> None:
        exists = self.journal.path_for(run_id).exists() or (
            self.store is not None and self.store.run_exists(run_id)
        )
        if exists:
            raise ValueError(
                f"run_id={run_id!r} already exists in this store; recorded runs are never "
                "overwritten, so choose a new run_id (or omit it where it is generated)"
            )

    # -- during the run -------------------------------------------------------------

    def suspend(self) -> ActiveRun:
        """Set the active run aside (a scenario header while its steps run)."""
        active = self.require_active("suspend")
        self.active = None
        return active

    def resume(self, active: ActiveRun) -> None:
        """Make a suspended run active again (RuntimeError if another run is active)."""
        if self.active is not None and self.active is not active:
            raise RuntimeError(
                f"cannot resume run {active.run.id!r} while run {self.active.run.id!r} is active"
            )
        self.active = active

    def require_active(self, what: str) -> ActiveRun:
        """The active run, or RuntimeError naming the call that needed one."""
        if self.active is None and self.read_only:
            raise ReadOnlyStoreError.refusing(what)
        if self.active is None:
            raise RuntimeError(
                f"{what} needs an active run; call it inside start_run()/run()/trace() "
                "or after begin_run()"
            )
        return self.active

    def log_artifacts(
        self, requests: list[ArtifactRequest], what: str, *, flush: bool = True
    ) -> list[Artifact]:
        """Build and attach artifacts to the active run, then flush once.

        With ``flush=False`` they are persisted with the run's next write
        (``end_run``), which saves a journal write and a transaction.

        An output request with ``allow_pending`` whose file does not exist
        yet is kept aside and hashed when the run ends. During a cache hit,
        an output with the cached content is the cached artifact, and any
        other output demotes the run to a miss (with a warning).
        """
        active = self.require_active(what)
        built = self.artifacts.build(requests, active.run.id)
        attached = False
        for i, (art, req) in enumerate(zip(built, requests, strict=True)):
            if req.direction == "output":
                if req.allow_pending and art.hash is None and not _exists(art.abs_path):
                    active.pending_outputs[art.key] = (art, req)  # nothing to write yet
                    continue
                active.pending_outputs.pop(art.key, None)
            built[i] = self._attach(active, art, req.direction)
            attached = True
        if flush and attached:
            self.flush()
        return built

    def _attach(self, active: ActiveRun, art: Artifact, direction: str) -> Artifact:
        if direction == "output" and active.cache_hit:
            cached = active.cached_outputs.get(art.key)
            if cached is not None and cached.hash is not None and cached.hash == art.hash:
                if not active.has_artifact(cached.id, "output"):
                    active.add_artifact(cached, "output")
                return cached
            self._demote(active, art, cached)
        active.add_artifact(art, direction)
        return art

    def _demote(self, active: ActiveRun, art: Artifact, cached: Artifact | None) -> None:
        """A hit whose block logged other outputs than the cached run's is a new result."""
        run, source = active.run, active.cached_run
        source_id = source.id if source is not None else run.meta.get("cache_source")
        what = "was not among" if cached is None else "differs from"
        warnings.warn(
            f"run {run.id!r} was a cache hit of run {source_id!r}, but output {art.key!r} "
            f"{what} its cached outputs; the run is recorded as a new result, not a cache hit",
            UserWarning,
            stacklevel=5,
        )
        active.cache_hit = False
        active.cached_outputs = {}
        active.cached_run = None
        for key in ("cache_hit", "cache_source", "cache_hydration"):
            run.meta.pop(key, None)
        run.meta["cache_miss_explanation"] = {
            "nearest_run_id": source_id,
            "summary": f"cache hit demoted: output {art.key!r} {what} the cached outputs",
            "outputs": {
                art.key: {"old": cached.hash if cached is not None else None, "new": art.hash}
            },
        }

    def _finish_outputs(self, active: ActiveRun, status: str) -> None:
        """Hash outputs logged before their files existed; attach a hit's cached outputs."""
        pending, active.pending_outputs = active.pending_outputs, {}
        missing: list[str] = []
        if status == "completed" and pending:
            present = [(art, req) for art, req in pending.values() if _exists(art.abs_path)]
            missing = [
                f"{k} ({art.abs_path})"
                for k, (art, _) in pending.items()
                if not _exists(art.abs_path)
            ]
            if present:
                requests = [replace(req, allow_pending=False) for _, req in present]
                for (art, _), new in zip(
                    present, self.artifacts.build(requests, active.run.id), strict=True
                ):
                    # The caller holds the artifact log_artifact returned: complete it.
                    for name in ("hash", "content_id", "size_bytes", "driver", "meta"):
                        setattr(art, name, getattr(new, name))
                    self._attach(active, art, "output")
        if active.cache_hit and status == "completed":
            for art in active.cached_outputs.values():
                if not active.has_artifact(art.id, "output"):
                    active.add_artifact(art, "output")
            active.record.cached_run = active.cached_run
        if missing and active.output_missing != "ignore":
            message = (
                f"run {active.run.id!r}: outputs {missing} were logged before their files "
                "existed and never appeared"
            )
            if active.output_missing == "error":
                raise RuntimeError(message + " (output_missing='error')")
            warnings.warn(message, UserWarning, stacklevel=4)

    def pending_managed_outputs(self) -> list[tuple[str, Path]]:
        """Files made with ``output_path`` that exist and are not logged yet."""
        active = self.active
        if active is None:
            return []
        logged = active.artifacts("output")
        return [
            (key, Path(path))
            for key, path in active.extra.get("managed_outputs", {}).items()
            if key not in logged and os.path.exists(path)
        ]

    def log_meta(self, **kwargs: Any) -> None:
        """Merge metadata into the active run and flush immediately."""
        active = self.require_active("log_meta")
        meta = validate_metadata(kwargs, param="log_meta(**kwargs)")
        reserved: dict[str, Any] = {}
        for key in RESERVED_META_KEYS:
            if key in meta:
                if key in ("year", "iteration"):
                    reserved[key] = validate_optional_int(meta[key], key)
                else:
                    reserved[key] = validate_optional_str(meta[key], key)
        # Apply only once everything validated: bad input changes nothing.
        before = dict(active.run.meta), {key: getattr(active.run, key) for key in reserved}
        for key, value in reserved.items():
            setattr(active.run, key, value)
        active.run.meta.update(meta)
        try:
            self.flush()
        except ValueError:  # the snapshot cannot hold it: leave the run as it was
            active.run.meta.clear()
            active.run.meta.update(before[0])
            for key, value in before[1].items():
                setattr(active.run, key, value)
            raise

    def flush(self) -> None:
        """Journal the active run, then sync it and its new artifacts to the store."""
        active = self.active
        if active is None:
            return
        self._persist(active)

    def _persist(self, active: ActiveRun) -> None:
        """Journal the run (fsynced), then commit it: visible to every reader on return.

        If the database write fails, the run is safe in the journal and
        replayed when a store is next opened.
        """
        if not active.persist:
            active.unsynced.clear()
            self.hasher.take_new_entries()
            return
        if self.store is None:
            self.journal.write(active.record, pending=False)
            active.unsynced.clear()
            return
        # The store runs the snapshot's file write (fsync) while its own
        # statements execute, and commits only after it.
        snapshot = Guard(self.journal.prepare_write(active.record))
        run_id, version, journal = active.run.id, active.record.updated_ns, self.journal
        pending = list(active.unsynced)
        try:
            self.store.sync_record(
                active.record,
                artifacts=pending,
                stat_entries=self.hasher.take_new_entries(),
                first=not active.store_synced,
                on_synced=lambda: journal.mark_synced(run_id, up_to_ns=version),
                before_commit=snapshot.run,
            )
        except JournalWriteError:
            raise
        except Exception as exc:
            if snapshot.failed:  # e.g. metadata the snapshot cannot hold
                raise
            snapshot.run()  # the run must be in the journal before this returns
            # The journal holds the run; the store catches up when it reopens.
            logger.error(
                "consist: could not write run %s to the database (%s); it is safe in the "
                "journal and will be replayed when the store is next opened",
                run_id,
                exc,
            )
            warnings.warn(
                f"run {run_id!r} was journaled but not written to the database: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        active.store_synced = True
        del active.unsynced[: len(pending)]

    # -- end --------------------------------------------------------------------------

    def end(
        self,
        status: str = "completed",
        error: BaseException | None = None,
    ) -> Run:
        """Finish the active run (see ``Tracker.end_run``).

        The final snapshot is journaled and committed to the store before
        this returns.
        """
        if status not in END_STATUSES:
            raise ValueError(f"status={status!r} is not supported; use 'completed' or 'failed'")
        if error is not None and not isinstance(error, BaseException):
            raise TypeError("error must be an exception instance or None")
        active = self.active
        if active is None:
            if self.last_record is not None and self._last_ended_id is not None:
                warnings.warn(
                    f"end_run() called again for run {self._last_ended_id!r}, which has "
                    "already ended; returning it unchanged",
                    UserWarning,
                    stacklevel=3,
                )
                return self.last_record.run
            raise RuntimeError("end_run() called with no active run; call begin_run() first")
        if status == "completed":
            managed = self.pending_managed_outputs()
            if managed:
                requests = [
                    ArtifactRequest(ref=path, key=key, direction="output") for key, path in managed
                ]
                self.log_artifacts(requests, "end_run", flush=False)
        try:
            self._finish_outputs(active, status)
        except RuntimeError as exc:  # output_missing="error"
            self.end("failed", error=exc)
            raise
        run = active.run
        run.status = status
        run.ended_at = utc_now()
        if error is not None:
            run.meta["error"] = f"{type(error).__name__}: {error}"
            run.meta["error_traceback"] = "".join(
                traceback.format_exception(type(error), error, error.__traceback__)
            )[-8000:]
        try:
            self._persist(active)
            # Team mode: uploaded before waiters on this signature look for the files.
            upload_failure = self._upload_outputs(active) if status == "completed" else None
        except Exception as exc:
            self._end_unrecorded(active, status, exc)
            raise
        finally:
            _release_claim(active)  # the result is visible to the waiters now
        self.active = None
        self.last_record = active.record
        self._last_ended_id = run.id
        if status == "completed":
            outputs = list(active.record.outputs)
            if self.cache is not None and active.persist:
                self.cache.remember(
                    active.run,
                    active.artifacts("output"),
                    active.record.identity,
                    is_source=not active.cache_hit,
                )
            self.hooks.fire(self.hooks.on_complete, "complete", run, outputs)
        else:
            exc = error if error is not None else RuntimeError(f"run {run.id} failed")
            self.hooks.fire(self.hooks.on_failed, "failed", run, exc)
        if upload_failure is not None:
            warnings.warn(upload_failure, RuntimeWarning, stacklevel=3)
        return run

    def _upload_outputs(self, active: ActiveRun) -> str | None:
        """Team mode: put a recorded run's output files in the blob store.

        Only a run that executed uploads (a hit's outputs came from there or
        from this machine's earlier run). A failure never fails the recorded
        run: it warns, and is recorded in ``run.meta["blob_upload_failed"]``
        (``{output key: error}``) with one more write of the run. Never
        raises; returns the warning ``end`` gives once the run is closed.
        """
        if self.blobs is None or active.cache_hit or not active.persist:
            return None
        uploaded, failed = self.blobs.upload(active.artifacts("output").values())
        if uploaded:
            logger.info("consist: run %s uploaded %s to %s", active.run.id, uploaded, self.blobs)
        if not failed:
            return None
        message = (
            f"run {active.run.id!r} is recorded, but outputs {sorted(failed)} were not uploaded "
            f"to the blob store {self.blobs.url}: {failed}"
        )
        logger.error("consist: %s", message)
        active.run.meta["blob_upload_failed"] = failed
        try:
            self._persist(active)
        except Exception as exc:  # the warning and the log stand
            logger.error(
                "consist: could not record the upload failure of %s: %s", active.run.id, exc
            )
        return message

    def fetch_for_load(self, artifact: Artifact) -> Artifact:
        """Team mode (``load``/``load_df``): fetch an artifact whose file is missing here.

        The file goes where the artifact resolves in this ``run_dir``,
        verified first. Without a blob store, or when the store does not have
        it or refuses it (with a warning), and under ``read_only`` (nothing is
        written), the artifact is returned as it was and ``load`` proceeds as
        without a blob store.
        """
        path = artifact.abs_path or self.artifacts.local_path(artifact)
        digest = blob_digest(artifact)
        if self.blobs is None or self.read_only or path is None or digest is None:
            return artifact
        if os.path.exists(path):
            return artifact
        try:
            if self.blobs.exists(digest):
                self.blobs.fetch(digest, path)
                return artifact.with_local_path(path)
        except BlobStoreError as exc:
            warnings.warn(f"artifact {artifact.key!r}: {exc}", RuntimeWarning, stacklevel=3)
        return artifact

    def _end_unrecorded(self, active: ActiveRun, status: str, exc: Exception) -> None:
        """Close a run whose final snapshot could not be written.

        The tracker is free for the next run at once. The run is recorded as
        failed if that can be written now; otherwise, when the cause is the
        file system (disk full), the failed state is written before the next
        run begins. A run that cannot be serialised stays as last recorded.
        """
        self.active = None
        self.last_record = active.record
        self._last_ended_id = active.run.id
        run = active.run
        if status == "completed":
            run.status = "failed"
            run.meta["error"] = (
                f"the run completed but could not be recorded: {type(exc).__name__}: {exc}"
            )
            try:
                self._persist(active)
            except Exception:
                if isinstance(exc, OSError):
                    self._unrecorded = active
            else:
                exc = RuntimeError(run.meta["error"])
        elif isinstance(exc, OSError):
            self._unrecorded = active
        logger.error("consist: run %s ended, but %s", run.id, exc)
        self.hooks.fire(self.hooks.on_failed, "failed", run, exc)

    def _retry_unrecorded(self) -> None:
        """Write the failed state of a run whose final write failed earlier."""
        active, self._unrecorded = self._unrecorded, None
        if active is None:
            return
        try:
            self._persist(active)
        except OSError as exc:
            self._unrecorded = active
            logger.warning(
                "consist: run %s is still not recorded as failed (%s); retrying before the "
                "next run",
                active.run.id,
                exc,
            )
        except Exception as exc:  # cannot be serialised: nothing more to do
            logger.error("consist: run %s cannot be recorded (%s)", active.run.id, exc)

    def artifact_dir_for(self, run: Run | None) -> Path:
        """The artifact directory of ``run`` (default: the active run)."""
        if run is None:
            return self.require_active("run_artifact_dir() without run=").artifact_dir
        if self.active is not None and self.active.run.id == run.id:
            return self.active.artifact_dir
        recorded = run.meta.get("artifact_dir") if run.meta else None
        if isinstance(recorded, str):
            return Path(self.paths.resolve_uri(recorded))
        return self.paths.resolve_artifact_dir(None, self._subdir_for(run))


def _exists(path: str | None) -> bool:
    return path is not None and os.path.exists(path)


def _release_claim(active: ActiveRun) -> None:
    claim = active.extra.pop("claim", None)
    if claim is not None:
        claim.release()

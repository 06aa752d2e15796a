"""Step-shaped methods of the Tracker: run, trace, outputs, cache access, loading.

Mixed into :class:`~consist.core.tracker.Tracker`. The knobs themselves are
documented once, on :mod:`consist.options`.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.core.paths import PathResolver
from consist.core.run.artifacts import ArtifactRequest, validate_key
from consist.core.run.config_plan import plan_facet
from consist.core.run.lifecycle import RunLifecycle
from consist.core.run.runner import StepRunner, step_decorator, step_defaults
from consist.core.run.step_names import render_step_name
from consist.core.store.metadata_store import MetadataStore
from consist.core.validation import validate_path_name
from consist.models.artifact import Artifact
from consist.models.results import RunResult
from consist.models.run import Run
from consist.options import CacheOptions, ExecutionOptions, OutputPolicyOptions

_DEPRECATED_INPUT_KEYS = (
    "input_keys/optional_input_keys are deprecated: pass inputs as a mapping "
    "{parameter_name: path}; named inputs bind to parameters of the same name"
)


@dataclass
class OutputCapture:
    """Artifacts logged by :meth:`TrackerSteps.capture_outputs` (filled on exit)."""

    directory: Path
    artifacts: list[Artifact] = field(default_factory=list)


class TrackerSteps:
    """Function-shaped runs and cache helpers shared by the Tracker facade."""

    lifecycle: RunLifecycle
    runner: StepRunner
    store: MetadataStore | None
    paths: PathResolver

    # -- run / trace ---------------------------------------------------------------

    def run(
        self,
        fn: Callable[..., Any] | None = None,
        name: str | None = None,
        *,
        run_id: str | None = None,
        model: str | None = None,
        description: str | None = None,
        config: Any = None,
        adapter: Any = None,
        config_plan_ingest: bool = True,
        config_plan_profile_schema: bool = False,
        inputs: Any = None,
        input_keys: Iterable[str] | str | None = None,
        optional_input_keys: Iterable[str] | str | None = None,
        depends_on: list[Any] | None = None,
        tags: list[str] | None = None,
        facet: Any = None,
        facet_from: list[str] | None = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool | None = None,
        identity_inputs: Any = None,
        year: int | None = None,
        iteration: int | None = None,
        phase: str | None = None,
        stage: str | None = None,
        parent_run_id: str | None = None,
        outputs: list[str] | None = None,
        output_paths: Mapping[str, Any] | None = None,
        capture_dir: str | os.PathLike[str] | None = None,
        capture_pattern: str = "*",
        cache_options: CacheOptions | None = None,
        output_policy: OutputPolicyOptions | None = None,
        execution_options: ExecutionOptions | None = None,
        runtime_kwargs: Mapping[str, Any] | None = None,
        **legacy: Any,
    ) -> RunResult:
        """Execute ``fn`` as a cached, recorded run.

        On a cache hit (same code, canonical config, input bytes, year,
        iteration, cache version/epoch) the function is not called and the
        earlier outputs are handed back; the hit is recorded as a new run
        linked to them (``meta["cache_hit"]``, ``meta["cache_source"]``). On a
        miss the function runs; named ``inputs`` and config keys bind to its
        parameters of the same name (:mod:`consist.core.run.binding`), and what
        it returns (DataFrame, Series, xarray object, path, Artifact, or a
        dict/tuple of them for several ``outputs``) is written under the
        run's artifact directory and
        logged. ``output_paths`` and files made with ``consist.output_path``
        are logged too; ``capture_dir`` logs new or modified files matching
        ``capture_pattern``. Every miss stores why it missed in
        ``run.meta["cache_miss_explanation"]``.

        Parameters
        ----------
        fn, name, run_id, model, description, config:
            The step (``name`` defaults to ``fn.__name__``, or to the image's
            name for a container step; ``model`` to ``name``; ``run_id`` is
            generated when omitted). ``fn`` is None for a container step
            (``ExecutionOptions(executor="container", container=ContainerSpec(...))``,
            see :class:`~consist.models.container.ContainerSpec`).
        inputs:
            Mapping of name -> path/Artifact (logged, hashed, bound), or a list
            (logged and hashed only).
        depends_on:
            More paths/Artifacts logged as inputs and hashed.
        identity_inputs:
            Paths or ``(name, path)`` pairs hashed into identity, not logged.
        tags, facet, facet_from, facet_schema_version, facet_index, year,
        iteration, phase, stage, parent_run_id:
            Run labels (only ``year`` and ``iteration`` change identity).
        outputs, output_paths, capture_dir, capture_pattern:
            What to log as outputs.
        cache_options, output_policy, execution_options:
            See :mod:`consist.options`.
        runtime_kwargs:
            Alias of ``ExecutionOptions.runtime_kwargs`` (not both).
        adapter, config_plan_ingest, config_plan_profile_schema:
            Config adapters; not available in this version (``adapter``
            must be None).
        input_keys, optional_input_keys:
            Deprecated (DeprecationWarning); inputs bind by mapping key.

        Returns
        -------
        RunResult
            ``outputs``, ``cache_hit``, ``run``, ``run_id``.

        Raises
        ------
        ValueError
            For ``fn=None`` (executor ``"python"``), a container step without
            ``container`` or ``output_paths``, ``config_plan`` / ``hash_inputs`` (use
            ``identity_inputs`` / ``adapter``), both ``runtime_kwargs`` forms,
            or other invalid arguments; raised before anything is written.
        ConsistRunError
            (a ``RuntimeError``) when the function raises; the run is recorded
            as failed and the original exception is its ``__cause__``. For a
            container that exits non-zero, its subclass ``ContainerRunError``
            (``exit_code``, ``stderr_path``).
        """
        container = execution_options is not None and execution_options.executor == "container"
        if fn is None and not (container or legacy.get("executor") == "container"):
            raise ValueError(
                "fn is required: tracker.run(fn=my_step, ...) (or a container step: "
                "execution_options=ExecutionOptions(executor='container', container=...))"
            )
        if name is None and fn is not None:
            name = _templated_name(fn, year=year, iteration=iteration, stage=stage, phase=phase)
        spec = self._step_spec(
            fn,
            locals(),
            legacy,
            cache_options=cache_options,
            output_policy=output_policy,
            execution_options=execution_options,
            runtime_kwargs=runtime_kwargs,
            what="run",
        )
        return self.runner.run(spec)

    @contextmanager
    def trace(
        self,
        name: str,
        *,
        run_id: str | None = None,
        model: str | None = None,
        description: str | None = None,
        config: Any = None,
        adapter: Any = None,
        config_plan_ingest: bool = True,
        config_plan_profile_schema: bool = False,
        inputs: Any = None,
        input_keys: Iterable[str] | str | None = None,
        optional_input_keys: Iterable[str] | str | None = None,
        depends_on: list[Any] | None = None,
        tags: list[str] | None = None,
        facet: Any = None,
        facet_from: list[str] | None = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool | None = None,
        identity_inputs: Any = None,
        year: int | None = None,
        iteration: int | None = None,
        phase: str | None = None,
        stage: str | None = None,
        parent_run_id: str | None = None,
        outputs: list[str] | None = None,
        output_paths: Mapping[str, Any] | None = None,
        capture_dir: str | os.PathLike[str] | None = None,
        capture_pattern: str = "*",
        cache_mode: str = "reuse",
        cache_hydration: str | None = None,
        cache_version: int | None = None,
        cache_epoch: int | None = None,
        validate_cached_outputs: str = "lazy",
        code_identity: str | None = None,
        code_identity_extra_deps: list[str] | None = None,
        output_mismatch: str = "warn",
        output_missing: str = "warn",
        **legacy: Any,
    ) -> Iterator[Any]:
        """Record an inline block as a run; the block always executes.

        Identity and cache lookup happen on entry: inside the block
        ``tracker.is_cached`` says whether an identical run exists and
        ``cached_output(key)`` hands back its outputs. ``output_paths`` are
        logged on exit; an exception marks the run failed and propagates.
        The flat cache/output keywords are those of :class:`CacheOptions`
        and :class:`OutputPolicyOptions` (``cache_mode="skip_check"`` is an
        alias of ``"overwrite"``).

        Yields
        ------
        Tracker
            This tracker.
        """
        flat = {
            "cache_mode": cache_mode,
            "cache_hydration": cache_hydration,
            "cache_version": cache_version,
            "cache_epoch": cache_epoch,
            "validate_cached_outputs": validate_cached_outputs,
            "code_identity": code_identity,
            "code_identity_extra_deps": code_identity_extra_deps,
            "output_mismatch": output_mismatch,
            "output_missing": output_missing,
        }
        args = {k: v for k, v in locals().items() if k not in flat}
        spec = self._step_spec(None, args, {**legacy, **flat}, what="trace")
        with self.runner.trace(spec) as tracker:
            yield tracker

    def validate_step(self, fn: Callable[..., Any], **run_kwargs: Any) -> Any:
        """Check ``run(fn, **run_kwargs)``'s arguments without running or writing.

        Returns the validated step declaration (a ``StepSpec``); raises the
        same ``TypeError`` / ``ValueError`` that :meth:`run` would, before
        anything is written. Used by sweeps to fail before starting workers.
        """
        import inspect

        params = inspect.signature(type(self).run).parameters
        args: dict[str, Any] = {
            name: (None if p.default is p.empty else p.default)
            for name, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in ("self", "fn")
        }
        legacy = {}
        for key, value in run_kwargs.items():
            if key in args:
                args[key] = value
            else:
                legacy[key] = value
        if args.get("name") is None and fn is not None:
            args["name"] = _templated_name(fn, **args)
        spec = self._step_spec(
            fn,
            args,
            legacy,
            cache_options=args.get("cache_options"),
            output_policy=args.get("output_policy"),
            execution_options=args.get("execution_options"),
            runtime_kwargs=args.get("runtime_kwargs"),
            what="run",
        )
        if self.lifecycle.active is None:
            # Run-level checks (config, tags, year, metadata, facets such as
            # facet_from naming config keys, identity inputs); writes nothing.
            self.lifecycle.prepare_begin(
                spec.run_id,
                spec.model,
                inputs=None,
                cache_options=spec.cache,
                fn=fn,
                run_id_is_new=True,
                **spec.begin_kwargs,
            )
        return spec

    def _step_spec(
        self,
        fn: Callable[..., Any] | None,
        args: dict[str, Any],
        flat: dict[str, Any],
        *,
        cache_options: CacheOptions | None = None,
        output_policy: OutputPolicyOptions | None = None,
        execution_options: ExecutionOptions | None = None,
        runtime_kwargs: Mapping[str, Any] | None = None,
        what: str,
    ) -> Any:
        adapter = args.get("adapter")
        # Resolved before anything is written: a bad config tree raises here.
        plan = self.prepare_config(adapter, None) if adapter is not None else None  # type: ignore[attr-defined]
        if args.get("input_keys") is not None or args.get("optional_input_keys") is not None:
            warnings.warn(_DEPRECATED_INPUT_KEYS, DeprecationWarning, stacklevel=4)
            _check_input_keys(args.get("inputs"), args.get("input_keys"))
        if runtime_kwargs is not None:
            if execution_options is not None and execution_options.runtime_kwargs:
                raise ValueError(
                    "pass runtime_kwargs either directly or in "
                    "ExecutionOptions(runtime_kwargs=...), not both"
                )
            flat = {**flat, "runtime_kwargs": dict(runtime_kwargs)}
        run_args = {
            k: v
            for k, v in args.items()
            if k
            not in (
                "self",
                "fn",
                "legacy",
                "flat",
                "cache_options",
                "output_policy",
                "execution_options",
                "runtime_kwargs",
                "adapter",
                "config_plan_ingest",
                "config_plan_profile_schema",
                "input_keys",
                "optional_input_keys",
            )
        }
        if run_args.get("capture_pattern") == "*":
            run_args["capture_pattern"] = None
        if plan is not None and run_args.get("facet") is None and not run_args.get("facet_from"):
            run_args["facet"], index = plan_facet(plan.values)
            if run_args.get("facet_index") is None:
                run_args["facet_index"] = index
        spec = self.runner.build_spec(
            fn,
            run_args,
            cache_options=cache_options,
            output_policy=output_policy,
            execution_options=execution_options,
            flat_options=flat,
            what=what,
        )
        # Outputs logged before their file exists are settled when the run
        # ends, under the step's output_missing policy.
        spec.begin_kwargs["output_missing"] = spec.policy.output_missing
        if plan is not None:
            spec.config_digests = plan.identity_components()
            spec.config_roots = tuple(str(d) for d in plan.config_dirs)
            ingest = bool(args.get("config_plan_ingest", True))
            profile = bool(args.get("config_plan_profile_schema", False))

            def attach_plan(cache_hit: bool) -> None:
                # A hit records its config files and bundle too; its tables were
                # ingested by the run it reuses.
                self.apply_config_plan(  # type: ignore[attr-defined]
                    plan, adapter=adapter, ingest=ingest and not cache_hit, profile_schema=profile
                )

            spec.after_begin = attach_plan
        return spec

    def define_step(self, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Attach ``run()`` defaults to a function (same as ``consist.define_step``)."""
        return step_decorator(**kwargs)

    # -- inside a run -------------------------------------------------------------------

    def output_path(self, key: str, ext: str = "parquet") -> Path:
        """A managed output path ``<artifact_dir>/<key>.<ext>`` for the active run.

        The directory is created. A file written there is logged as output
        ``key`` when the step ends, unless the step logged ``key`` itself.

        ``key`` must be a single file name (see
        :func:`~consist.core.validation.validate_path_name`); ``ext`` is
        empty or an extension such as ``"csv"`` or ``"tar.gz"`` (leading dots
        are dropped) without path separators or control characters.

        Raises
        ------
        RuntimeError
            Outside an active run.
        TypeError
            If ``key`` or ``ext`` is not a string.
        ValueError
            If ``key`` or ``ext`` could lead outside the artifact directory or
            is not a valid file name (nothing is created).
        """
        active = self.lifecycle.require_active("output_path")
        validate_key(key, param="key", file_name=True)
        if not isinstance(ext, str):
            raise TypeError(f"ext must be a string such as 'csv', got {type(ext).__name__}")
        ext = ext.lstrip(".")
        if ext:
            validate_path_name(ext, param="ext", purpose="a file extension")
        if len(f"{key}.{ext}".encode()) > 255:
            raise ValueError(
                f"key and ext make a file name of more than 255 bytes ({key[:40]!r}...); "
                "use a shorter key or ext"
            )
        active.artifact_dir.mkdir(parents=True, exist_ok=True)
        path = active.artifact_dir / (f"{key}.{ext}" if ext else key)
        active.extra.setdefault("managed_outputs", {})[key] = path
        return path

    @contextmanager
    def capture_outputs(
        self, directory: str | os.PathLike[str], pattern: str = "*", recursive: bool = False
    ) -> Iterator[OutputCapture]:
        """Log files created or modified in ``directory`` during the block.

        Raises
        ------
        RuntimeError
            Outside an active run.
        """
        self.lifecycle.require_active("capture_outputs")
        root = Path(os.path.abspath(os.fspath(directory)))
        glob = f"**/{pattern}" if recursive else pattern
        before = _stat_files(root, glob)
        capture = OutputCapture(directory=root)
        yield capture
        after = _stat_files(root, glob)
        changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
        taken = set(self.lifecycle.require_active("capture_outputs").artifacts("output"))
        requests = []
        for p in changed:
            path = Path(p)
            key = path.stem if path.stem not in taken else path.relative_to(root).as_posix()
            taken.add(key)
            requests.append(ArtifactRequest(ref=path, key=key, direction="output"))
        if requests:
            capture.artifacts = self.lifecycle.log_artifacts(requests, "capture_outputs")

    def cached_artifacts(self, direction: str = "output") -> dict[str, Artifact]:
        """Artifacts a cache hit handed to the active run (empty if not a hit).

        Raises
        ------
        ValueError
            If ``direction`` is not ``"output"`` or ``"input"`` (hit or not).
        """
        if direction not in ("output", "input"):
            raise ValueError(f"direction={direction!r}: use 'output' or 'input'")
        active = self.lifecycle.active
        if active is None or not active.cache_hit:
            return {}
        if direction == "input":
            return active.artifacts("input")
        return dict(active.cached_outputs)

    def cached_output(self, key: str | None = None) -> Artifact | None:
        """One cached output of the active run (the first if ``key`` is None)."""
        cached = self.cached_artifacts("output")
        if key is None:
            return next(iter(cached.values()), None)
        return cached.get(key)

    # -- cache and history -----------------------------------------------------------------

    def find_matching_run(self, config_hash: str, input_hash: str, git_hash: str) -> Run | None:
        """The newest completed run with these identity digests (None without a DB)."""
        if self.store is None:
            return None
        return self.store.find_completed_run_by_hashes(config_hash, input_hash, git_hash)

    def explain_cache_miss(self, run_id: str) -> dict[str, Any] | None:
        """Why run ``run_id`` did not reuse an earlier run.

        Returns the explanation recorded at run time
        (``run.meta["cache_miss_explanation"]``): the nearest completed run of
        the same model and the config keys (old/new values), input keys and
        code files that differ. For a cache hit, ``{"cache_hit": True,
        "cache_source": ...}``; None for an unknown run.
        """
        run = self.get_run(run_id) if self.store is not None else None  # type: ignore[attr-defined]
        if run is None:
            record = self.journal.read(run_id)  # type: ignore[attr-defined]
            run = record.run if record else None
        if run is None:
            return None
        if run.meta.get("cache_hit"):
            return {"cache_hit": True, "cache_source": run.meta.get("cache_source")}
        return run.meta.get("cache_miss_explanation")

    def get_run_artifact(
        self,
        run_id: str,
        key: str | None = None,
        key_contains: str | None = None,
        direction: str = "output",
    ) -> Artifact | None:
        """One artifact of a run by exact key, else by substring, else None."""
        if direction not in ("output", "input"):
            raise ValueError("direction must be 'output' or 'input'")
        found = self.get_artifacts_for_run(run_id)  # type: ignore[attr-defined]
        bucket = found.outputs if direction == "output" else found.inputs
        if key is not None and key in bucket:
            return bucket[key]
        if key_contains is not None:
            for k in sorted(bucket):
                if key_contains in k:
                    return bucket[k]
        return None

    def load_run_output(self, run_id: str, key: str, **kwargs: Any) -> Any:
        """Load output ``key`` of run ``run_id`` (see :meth:`load`).

        Raises
        ------
        KeyError
            If the run has no such output.
        """
        art = self.get_run_outputs(run_id).get(key)  # type: ignore[attr-defined]
        if art is None:
            raise KeyError(f"run {run_id!r} has no output {key!r}")
        return self.load(art, **kwargs)

    def load(self, artifact: Artifact, **kwargs: Any) -> Any:
        """Load an artifact: a DuckDB relation for parquet/csv/json tables.

        Raises
        ------
        FileNotFoundError
            If the file is not available locally.
        ValueError
            If no loader exists for the artifact's driver.
        """
        from consist.core.hot.loading import load_relation

        artifact = self.lifecycle.fetch_for_load(artifact)  # team mode: from the blob store
        return load_relation(
            artifact, locate=self.artifacts.local_path, hot=self.hot_data_store, **kwargs
        )

    def load_df(self, artifact: Artifact, **kwargs: Any) -> Any:
        """Load a tabular artifact as a pandas DataFrame."""
        from consist.core.hot.loading import load_dataframe

        artifact = self.lifecycle.fetch_for_load(artifact)
        return load_dataframe(
            artifact, locate=self.artifacts.local_path, hot=self.hot_data_store, **kwargs
        )

    def materialize(
        self,
        artifact: Artifact,
        destination_path: str | os.PathLike[str],
        *,
        on_missing: str = "warn",
    ) -> str | None:
        """Copy an artifact's bytes to ``destination_path``.

        The destination is the one the caller names, wherever it points
        (inside or outside ``run_dir``; missing parent directories are
        created). Bytes are copied from the artifact's file; rows that exist
        only in the database are not reconstructed.

        Parameters
        ----------
        artifact:
            The artifact to copy.
        destination_path:
            Where to write the copy (a directory artifact is copied as a tree).
        on_missing:
            ``"warn"`` (default): a missing source warns and returns None;
            ``"raise"``: FileNotFoundError.

        Returns
        -------
        str | None
            The absolute destination path, or None if the source is missing
            and ``on_missing="warn"``.

        Raises
        ------
        ValueError
            If ``on_missing`` is invalid or ``destination_path`` is empty.
        FileNotFoundError
            If the source is missing and ``on_missing="raise"``.
        """
        if on_missing not in ("warn", "raise"):
            raise ValueError("on_missing must be 'warn' or 'raise'")
        dest = self.paths.user_write_path(destination_path, param="destination_path")
        src = artifact.abs_path or self.artifacts.local_path(artifact)  # type: ignore[attr-defined]
        if src is None or not os.path.exists(src):
            message = f"cannot materialize {artifact.key!r}: {artifact.uri} is missing"
            if on_missing == "raise":
                raise FileNotFoundError(message)
            warnings.warn(message, UserWarning, stacklevel=2)
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
        return str(dest)


def _templated_name(fn: Callable[..., Any], **values: Any) -> str | None:
    """The step name from ``define_step(name_template=...)``, or None without one."""
    defaults = step_defaults(fn)
    template = defaults.get("name_template")
    if template is None:
        return None
    return render_step_name(template, fn, defaults, values)


def _stat_files(root: Path, glob: str) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    out = {}
    for path in root.glob(glob):
        if path.is_file():
            st = path.stat()
            out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out


def _check_input_keys(inputs: Any, input_keys: Any) -> None:
    if input_keys is None:
        return
    keys = [input_keys] if isinstance(input_keys, str) else list(input_keys)
    if not isinstance(inputs, Mapping):
        raise ValueError("input_keys needs inputs as a mapping {name: path}")
    missing = [k for k in keys if k not in inputs]
    if missing:
        raise ValueError(f"input_keys names {missing}, which are not keys of inputs")

"""Function-shaped runs (``Tracker.run``) and inline traced runs (``Tracker.trace``).

The runner turns a step declaration into a run: it validates everything up
front, lets the lifecycle compute identity and consult the cache, binds
inputs into the function's parameters, executes it on a miss, and logs what
it returned or wrote as output artifacts.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from consist.core.drivers import tabular
from consist.core.drivers import zarr as zarr_driver
from consist.core.run import context
from consist.core.run.artifacts import ArtifactRequest, validate_key
from consist.core.run.binding import BindingPlan, BindingPlanner, InputBinding
from consist.core.run.container_step import (
    LOG_OUTPUT_KEYS,
    ContainerStep,
    default_step_name,
    plan_container_step,
)
from consist.core.run.errors import ConsistRunError
from consist.core.run.lifecycle import RunLifecycle
from consist.core.run.step_names import check_name_template
from consist.core.validation import validate_model, validate_path_name, validate_run_id
from consist.models.artifact import Artifact
from consist.models.results import RunResult
from consist.options import CacheOptions, ExecutionOptions, OutputPolicyOptions

STEP_ATTR = "__consist_step__"

CACHE_FIELDS = frozenset(CacheOptions.model_fields)
POLICY_FIELDS = frozenset(OutputPolicyOptions.model_fields)
EXECUTION_FIELDS = frozenset(ExecutionOptions.model_fields)
RUN_FIELDS = frozenset(
    {
        "name",
        "run_id",
        "model",
        "description",
        "config",
        "inputs",
        "depends_on",
        "tags",
        "facet",
        "facet_from",
        "facet_schema_version",
        "facet_index",
        "identity_inputs",
        "year",
        "iteration",
        "phase",
        "stage",
        "parent_run_id",
        "outputs",
        "output_paths",
        "capture_dir",
        "capture_pattern",
    }
)
STEP_FIELDS = RUN_FIELDS | CACHE_FIELDS | POLICY_FIELDS | EXECUTION_FIELDS
REJECTED = {
    "config_plan": "config_plan is not accepted; pass adapter=... (or identity_inputs=[...])",
    "hash_inputs": "hash_inputs is not accepted on run()/trace(); use identity_inputs=[...]",
}


@dataclass
class StepSpec:
    """A validated step declaration (arguments of ``run`` / ``trace``)."""

    fn: Callable[..., Any] | None
    name: str
    model: str
    run_id: str
    run_id_generated: bool
    begin_kwargs: dict[str, Any]
    inputs: list[ArtifactRequest]
    outputs: list[str] | None
    output_paths: dict[str, Path]
    capture_dir: Path | None
    capture_pattern: str
    cache: CacheOptions
    policy: OutputPolicyOptions
    execution: ExecutionOptions
    binding: BindingPlan | None = None  # which parameter receives what (fn only)
    # A config adapter's plan (run/trace adapter=...): its file digests join
    # the config side of identity; ``after_begin(cache_hit)`` attaches it.
    config_digests: dict[str, str] = field(default_factory=dict)
    config_roots: tuple[str, ...] = ()
    after_begin: Callable[[bool], None] | None = None
    container: ContainerStep | None = None  # executor="container": runs instead of fn


class StepHost(Protocol):
    """What the step runner needs from the object it runs steps for.

    The :class:`~consist.core.tracker.Tracker` is the host: it becomes the
    current tracker while a step executes (so ``consist.output_path`` and
    friends find it), loads inputs bound as data, and serves ``RunContext``.
    The runner never needs more of it.
    """

    def load_df(self, artifact: Artifact, **kwargs: Any) -> Any:
        """Load an artifact's data (see ``Tracker.load_df``)."""
        ...

    def output_path(self, key: str, ext: str = "parquet") -> Path:
        """A managed output path of the active run."""
        ...

    def log_artifact(self, path: Any, key: str | None = None, **kwargs: Any) -> Artifact:
        """Log an artifact on the active run."""
        ...

    def log_meta(self, **kwargs: Any) -> None:
        """Add metadata to the active run."""
        ...


class RunContext:
    """Handed to a step function that asked for it (``inject_context``).

    Attributes
    ----------
    run:
        The run being executed.
    config:
        The run's config (a copy).
    inputs:
        Input artifacts by key.
    artifact_dir:
        Where managed outputs of this run go.
    """

    def __init__(self, host: StepHost, lifecycle: RunLifecycle) -> None:
        self._host = host
        active = lifecycle.require_active("RunContext")
        self.run = active.run
        self.config = dict(active.record.config)
        self.inputs = active.artifacts("input")
        self.artifact_dir = active.artifact_dir

    def output_path(self, key: str, ext: str = "parquet") -> Path:
        """A managed output path ``artifact_dir/key.ext`` (logged automatically)."""
        return self._host.output_path(key, ext)

    def log_artifact(self, path: Any, key: str | None = None, **kwargs: Any) -> Artifact:
        """Log an artifact on the run (see ``Tracker.log_artifact``)."""
        return self._host.log_artifact(path, key, **kwargs)

    def log_meta(self, **kwargs: Any) -> None:
        """Add run metadata (see ``Tracker.log_meta``)."""
        self._host.log_meta(**kwargs)


def step_defaults(fn: Callable[..., Any] | None) -> dict[str, Any]:
    """The ``define_step`` metadata attached to ``fn`` (empty if none)."""
    if fn is None:
        return {}
    return dict(getattr(fn, STEP_ATTR, None) or {})


def step_decorator(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorator behind ``consist.define_step`` (documented there).

    Raises
    ------
    TypeError
        For an unknown keyword, at decoration time.
    """
    template = check_name_template(kwargs.pop("name_template", None))
    metadata = validate_step_metadata(kwargs)
    if template is not None:
        metadata["name_template"] = template

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, STEP_ATTR, {**(getattr(fn, STEP_ATTR, None) or {}), **metadata})
        return fn

    return decorate


def validate_step_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``define_step`` keywords against the parameters ``run`` understands."""
    unknown = sorted(set(metadata) - STEP_FIELDS)
    if unknown:
        raise TypeError(
            f"define_step got unknown keyword(s) {unknown}; use run() parameters such as "
            "outputs, tags, cache_mode, inject_context"
        )
    return dict(metadata)


def _merge_options(cls: type, given: Any, flat: Mapping[str, Any], param: str) -> Any:
    if given is not None and not isinstance(given, cls):
        raise TypeError(f"{param} must be a {cls.__name__}, got {type(given).__name__}")
    base = given if given is not None else cls()
    try:
        return base.merged(**flat) if flat else base
    except ValueError as exc:
        raise ValueError(f"invalid {param}: {exc}") from exc


def _step_option_defaults(
    defaults: Mapping[str, Any], fields: frozenset[str], given: Any
) -> dict[str, Any]:
    explicit = getattr(given, "model_fields_set", set())
    return {k: v for k, v in defaults.items() if k in fields and k not in explicit}


def _generated_run_id(name: str) -> str:
    """``<name>_<UTC time>_<10 random hex digits>``.

    Formatted by hand rather than with ``strftime`` and ``uuid4``: this runs
    on every step, and in the middle of a run (cold caches) those cost about
    ten times their isolated figure. Forty random bits, as ``uuid4().hex[:10]``.
    """
    now = datetime.now(UTC)
    stamp = (
        f"{now.year:04d}{now.month:02d}{now.day:02d}T{now.hour:02d}{now.minute:02d}{now.second:02d}"
    )
    return f"{_run_id_prefix(name)}_{stamp}_{os.urandom(5).hex()}"


@functools.lru_cache(maxsize=1024)
def _run_id_prefix(name: str) -> str:
    """``name`` made safe for a run id (a step's name repeats on every run)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:80] or "run"


class StepRunner:
    """Executes ``run`` and ``trace`` steps for one tracker.

    Parameters
    ----------
    lifecycle:
        The run lifecycle (begin/end, artifact logging).
    host:
        The facade (see :class:`StepHost`), made current while a step
        executes and handed to ``RunContext``.
    """

    def __init__(self, lifecycle: RunLifecycle, host: StepHost) -> None:
        self.lifecycle = lifecycle
        self.host = host
        self.binding = BindingPlanner()

    # -- declaration --------------------------------------------------------------

    def build_spec(
        self,
        fn: Callable[..., Any] | None,
        args: dict[str, Any],
        *,
        cache_options: CacheOptions | None,
        output_policy: OutputPolicyOptions | None,
        execution_options: ExecutionOptions | None,
        flat_options: Mapping[str, Any],
        what: str,
    ) -> StepSpec:
        """Validate a step's arguments (merging ``define_step`` defaults).

        Raises
        ------
        TypeError, ValueError
            Before anything is written, naming the offending parameter.
        """
        for key, message in REJECTED.items():
            if key in flat_options:
                raise ValueError(message)
        defaults = step_defaults(fn)
        merged = {k: v for k, v in defaults.items() if k in RUN_FIELDS}
        merged.update({k: v for k, v in args.items() if v is not None})
        # define_step defaults fill only what explicit option objects leave unset.
        flat_cache = _step_option_defaults(defaults, CACHE_FIELDS, cache_options)
        flat_policy = _step_option_defaults(defaults, POLICY_FIELDS, output_policy)
        flat_exec = _step_option_defaults(defaults, EXECUTION_FIELDS, execution_options)
        for key, value in flat_options.items():
            if value is None:
                continue
            if key in CACHE_FIELDS:
                flat_cache[key] = value
            elif key in POLICY_FIELDS:
                flat_policy[key] = value
            elif key in EXECUTION_FIELDS:
                flat_exec[key] = value
            else:
                raise TypeError(f"{what}() got an unexpected keyword argument {key!r}")
        if flat_cache.get("cache_mode") == "skip_check":
            flat_cache["cache_mode"] = "overwrite"
        cache = _merge_options(CacheOptions, cache_options, flat_cache, "cache_options")
        policy = _merge_options(OutputPolicyOptions, output_policy, flat_policy, "output_policy")
        execution = _merge_options(
            ExecutionOptions, execution_options, flat_exec, "execution_options"
        )

        container = plan_container_step(fn, execution, merged, what)
        name = merged.get("name") or (getattr(fn, "__name__", None) if fn else None)
        if not name and container is not None:
            name = default_step_name(container.spec)
        if not name:
            raise ValueError(f"{what}() needs a name (or a named function)")
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        # The step name is recorded (as the default model name) and folded,
        # made safe, into the generated run id: text, not a path.
        validate_model(name, param="name")
        model = merged.get("model") or name
        run_id = merged.get("run_id")
        generated = run_id is None
        if not generated:
            validate_run_id(run_id)
        run_id = run_id or _generated_run_id(name)

        inputs = _input_requests(merged.get("inputs"), merged.get("depends_on"))
        outputs = _output_keys(merged.get("outputs"))
        # A container step's output paths are placed when its run directory is known.
        output_paths = {} if container else _output_paths(merged.get("output_paths"))
        capture_dir = merged.get("capture_dir")
        capture_pattern = merged.get("capture_pattern") or "*"
        if capture_dir is None and capture_pattern != "*":
            raise ValueError(
                f"capture_pattern={capture_pattern!r} has no effect without capture_dir; "
                "pass capture_dir=... (the directory whose new files are logged as outputs)"
            )
        if capture_dir is not None:
            capture_dir = Path(os.path.abspath(os.fspath(capture_dir)))
        begin_kwargs = {
            k: merged.get(k)
            for k in (
                "description",
                "config",
                "tags",
                "facet",
                "facet_from",
                "facet_schema_version",
                "year",
                "iteration",
                "stage",
                "phase",
                "parent_run_id",
            )
        }
        begin_kwargs["hash_inputs"] = merged.get("identity_inputs")
        if merged.get("facet_index") is not None:
            begin_kwargs["facet_index"] = merged["facet_index"]
        spec = StepSpec(
            fn=fn,
            name=name,
            model=model,
            run_id=run_id,
            run_id_generated=generated,
            begin_kwargs=begin_kwargs,
            inputs=inputs,
            outputs=outputs,
            output_paths=output_paths,
            capture_dir=capture_dir,
            capture_pattern=capture_pattern,
            cache=cache,
            policy=policy,
            execution=execution,
            container=container,
        )
        if fn is not None:
            spec.binding = self._plan_binding(fn, spec)
        return spec

    def _plan_binding(self, fn: Callable[..., Any], spec: StepSpec) -> BindingPlan:
        """Which parameter receives what (see :mod:`consist.core.run.binding`); writes nothing."""
        plan = self.binding.plan(
            fn,
            config=spec.begin_kwargs.get("config"),
            input_keys=[req.key for req in spec.inputs if req.bind],
            input_binding=spec.execution.binding,
            runtime_kwargs=spec.execution.runtime_kwargs,
            inject_context=spec.execution.inject_context,
        )
        if plan.runtime_overrides:
            # The hashed value of these parameters did not reach the function: say so.
            spec.begin_kwargs["runtime_overrides"] = list(plan.runtime_overrides)
        return plan

    # -- execution ----------------------------------------------------------------------

    def _begin_request(self, spec: StepSpec) -> Any:
        """Validate the run-level arguments of ``spec`` (writes nothing)."""
        request = self.lifecycle.prepare_begin(
            spec.run_id,
            spec.model,
            inputs=None,
            cache_options=spec.cache,
            fn=spec.fn,
            run_id_is_new=spec.run_id_generated,
            **spec.begin_kwargs,
        )
        request.input_requests = spec.inputs
        request.output_paths = spec.output_paths
        request.config_digests = dict(spec.config_digests)
        request.config_roots = spec.config_roots
        return request

    def run(self, spec: StepSpec) -> RunResult:
        """Execute (or reuse) a function-shaped step, or a container step."""
        if spec.fn is None and spec.container is None:
            raise ValueError("fn is required for executor='python'")
        lifecycle = self.lifecycle
        request = self._begin_request(spec)
        if spec.container is not None:  # engine and image digest, before any write
            spec.container.prepare()
            spec.container.use_config(request.config)
            planned = lifecycle.planned_artifact_dir(request)
            spec.output_paths = spec.container.host_output_paths(planned)
            request.output_paths = spec.output_paths
            request.container = spec.container.identity
        token = context.set_current(self.host)
        try:
            run = lifecycle.begin(request, defer_writes=True)
            active = lifecycle.active
            assert active is not None
            if spec.after_begin is not None:
                try:
                    spec.after_begin(active.cache_hit)
                except BaseException as exc:
                    lifecycle.end("failed", error=exc)
                    raise
            if active.cache_hit:
                outputs = dict(active.cached_outputs)
                lifecycle.end("completed")
                return RunResult(outputs=outputs, cache_hit=True, run=run)
            if spec.container is not None:
                self._run_container(spec, spec.container)
                return RunResult(outputs=active.artifacts("output"), cache_hit=False, run=run)
            kwargs = self._call_kwargs(spec)
            before = _snapshot(spec.capture_dir, spec.capture_pattern)
            try:
                assert spec.fn is not None
                value = spec.fn(**kwargs)
            except Exception as exc:
                lifecycle.end("failed", error=exc)
                raise ConsistRunError(
                    f"step {spec.name!r} (run {run.id}) failed: {type(exc).__name__}: {exc}",
                    run.id,
                ) from exc
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: record, re-raise
                lifecycle.end("failed", error=exc)
                raise
            try:
                self._log_outputs(spec, value, before)
            except Exception as exc:
                lifecycle.end("failed", error=exc)
                raise
            lifecycle.end("completed")
            return RunResult(outputs=active.artifacts("output"), cache_hit=False, run=run)
        finally:
            context.reset(token)

    def _run_container(self, spec: StepSpec, container: ContainerStep) -> None:
        """Run the container of a missed step; log its logs and outputs, end the run."""
        lifecycle = self.lifecycle
        active = lifecycle.require_active("run")
        run = active.run
        before = _snapshot(spec.capture_dir, spec.capture_pattern)
        try:
            outcome = container.execute(active.artifact_dir, run.id, spec.output_paths)
        except BaseException as exc:
            lifecycle.end("failed", error=exc)
            if not isinstance(exc, Exception):
                raise
            raise ConsistRunError(
                f"container step {spec.name!r} (run {run.id}) could not run: {exc}", run.id
            ) from exc
        run.meta["container"] = container.record(outcome)
        logs = [
            ArtifactRequest(ref=path, key=key, direction="output")
            for key, path in zip(LOG_OUTPUT_KEYS, (outcome.stdout, outcome.stderr), strict=True)
        ]
        try:
            lifecycle.log_artifacts(logs, "run", flush=False)
            if outcome.exit_code != 0:
                raise container.failure(outcome, spec.name, run.id)
            self._log_outputs(spec, None, before)
        except Exception as exc:
            lifecycle.end("failed", error=exc)
            raise
        lifecycle.end("completed")

    def _call_kwargs(self, spec: StepSpec) -> dict[str, Any]:
        active = self.lifecycle.require_active("run")
        assert spec.binding is not None
        inputs = active.artifacts("input")

        def input_value(binding: InputBinding) -> Any:
            art = inputs.get(binding.key) or _same_artifact(spec.inputs, binding.key, inputs)
            return self.host.load_df(art) if binding.load else _local_path(art)

        return spec.binding.call_kwargs(
            active.record.config,
            input_value=input_value,
            runtime_kwargs=spec.execution.runtime_kwargs,
            context=lambda: RunContext(self.host, self.lifecycle),
        )

    def _log_outputs(self, spec: StepSpec, value: Any, before: dict[str, tuple[int, int]]) -> None:
        active = self.lifecycle.require_active("run")
        produced = returned_outputs(value, spec.outputs, spec.output_paths, spec.policy)
        requests: list[ArtifactRequest] = []
        for key, item in produced.items():
            requests.append(self._output_request(key, item, active.artifact_dir))
        logged = {r.key for r in requests} | set(active.artifacts("output"))
        for key, path in spec.output_paths.items():
            if key in logged:
                continue
            if path.exists():
                requests.append(ArtifactRequest(ref=path, key=key, direction="output"))
                logged.add(key)
        for key, path in _captured(spec.capture_dir, spec.capture_pattern, before, logged):
            requests.append(ArtifactRequest(ref=path, key=key, direction="output"))
            logged.add(key)
        if requests:
            self.lifecycle.log_artifacts(requests, "run", flush=False)
        logged |= {key for key, _ in self.lifecycle.pending_managed_outputs()}
        declared = list(spec.outputs or []) + list(spec.output_paths)
        missing = [k for k in declared if k not in logged]
        if missing:
            _apply_policy(
                spec.policy.output_missing,
                f"step {spec.name!r} declared outputs {missing} but did not produce them",
            )

    def _output_request(self, key: str, item: Any, directory: Path) -> ArtifactRequest:
        if isinstance(item, Artifact):
            return ArtifactRequest(ref=item, key=key, direction="output")
        if tabular.is_table(item) or tabular.is_xarray(item):
            # Declared keys were checked before the step ran; this guards any other route.
            validate_path_name(key, param="outputs", purpose="the output's file name")
        if tabular.is_table(item):
            path = tabular.write_table(item, directory, key)
        elif tabular.is_xarray(item):
            # NetCDF by default, Zarr when chunked or large (consist.core.drivers.zarr).
            path, meta = zarr_driver.write_returned(item, directory, key)
            return ArtifactRequest(ref=path, key=key, direction="output", meta=meta)
        elif isinstance(item, str | os.PathLike):
            path = Path(os.fspath(item))
            if not path.exists():
                raise FileNotFoundError(
                    f"output {key!r}: the step returned {os.fspath(item)!r}, which does not exist"
                )
        else:
            raise TypeError(
                f"output {key!r}: cannot record a returned {type(item).__name__}; return a "
                "DataFrame/Series, an xarray object, a path or an Artifact"
            )
        return ArtifactRequest(ref=path, key=key, direction="output")

    # -- trace ------------------------------------------------------------------------

    @contextmanager
    def trace(self, spec: StepSpec) -> Iterator[Any]:
        """Inline run: the block always executes; hits are visible via ``is_cached``."""
        lifecycle = self.lifecycle
        request = self._begin_request(spec)
        token = context.set_current(self.host)
        try:
            lifecycle.begin(request)
            before = _snapshot(spec.capture_dir, spec.capture_pattern)
            try:
                active = lifecycle.active
                if spec.after_begin is not None and active is not None:
                    spec.after_begin(active.cache_hit)
                yield self.host
            except BaseException as exc:
                if lifecycle.active is not None:
                    lifecycle.end("failed", error=exc)
                raise
            if lifecycle.active is None:
                return
            try:
                self._log_outputs(spec, None, before)
            except Exception as exc:
                lifecycle.end("failed", error=exc)
                raise
            lifecycle.end("completed")
        finally:
            context.reset(token)


def returned_outputs(
    value: Any,
    outputs: list[str] | None,
    output_paths: Mapping[str, Path],
    policy: OutputPolicyOptions,
) -> dict[str, Any]:
    """Map a step's return value to output keys (see ``Tracker.run``'s ``outputs``)."""
    if value is None:
        return {}
    if outputs:
        # An xarray Dataset is a Mapping of its variables, but it is one output.
        if isinstance(value, Mapping) and not tabular.is_xarray(value):
            extra = sorted(set(value) - set(outputs))
            if extra:
                _apply_policy(
                    policy.output_mismatch,
                    f"the step returned keys {extra} that outputs={outputs} does not name",
                )
            return {k: value[k] for k in outputs if k in value and value[k] is not None}
        if isinstance(value, list | tuple) and len(outputs) > 1:
            if len(value) != len(outputs):
                _apply_policy(
                    policy.output_mismatch,
                    f"the step returned {len(value)} values for outputs={outputs}",
                )
            return {k: v for k, v in zip(outputs, value, strict=False) if v is not None}
        if len(outputs) == 1:
            return {outputs[0]: value}
        _apply_policy(
            policy.output_mismatch,
            f"the step returned one {type(value).__name__} for outputs={outputs}",
        )
        return {}
    if output_paths:
        return {}
    # No declared outputs: record artifact-like returns only.
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if isinstance(k, str) and _artifact_like(v)}
    if _artifact_like(value):
        if isinstance(value, Artifact):
            return {value.key: value}
        return {Path(os.fspath(value)).stem: value}
    return {}


def _artifact_like(value: Any) -> bool:
    if isinstance(value, Artifact):
        return True
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and os.path.exists(value)


def _apply_policy(policy: str, message: str) -> None:
    if policy == "error":
        raise RuntimeError(message + " (output policy 'error')")
    if policy == "warn":
        warnings.warn(message, UserWarning, stacklevel=4)


def _local_path(art: Artifact) -> Path:
    if art.abs_path is None:
        raise FileNotFoundError(f"input {art.key!r} ({art.uri}) has no local path")
    return Path(art.abs_path)


def _input_requests(inputs: Any, depends_on: Any) -> list[ArtifactRequest]:
    requests: list[ArtifactRequest] = []
    used: set[str] = set()
    if inputs is not None:
        if isinstance(inputs, str | bytes | os.PathLike):
            raise TypeError(
                "inputs must be a mapping {name: path} or a list of paths, not a single path"
            )
        if isinstance(inputs, Mapping):
            for key, ref in inputs.items():
                if not isinstance(key, str) or not key:
                    raise TypeError(f"inputs keys must be non-empty strings, got {key!r}")
                validate_key(key, param="inputs")  # recorded only: '/' is fine
                _check_ref(ref, f"inputs[{key!r}]")
                requests.append(ArtifactRequest(ref=ref, key=key, direction="input", bind=True))
                used.add(key)
        else:
            requests.extend(_unnamed(inputs, "inputs", used))
    if depends_on is not None:
        if isinstance(depends_on, str | bytes | os.PathLike):
            depends_on = [depends_on]
        requests.extend(_unnamed(depends_on, "depends_on", used))
    return requests


def _unnamed(refs: Iterable[Any], param: str, used: set[str]) -> list[ArtifactRequest]:
    out = []
    for ref in refs:
        _check_ref(ref, param)
        if isinstance(ref, Artifact):
            key = ref.key
        else:
            path = Path(os.fspath(ref))
            key = path.stem or path.name
        base, n = key, 2
        while key in used:
            key = f"{base}_{n}"
            n += 1
        used.add(key)
        out.append(ArtifactRequest(ref=ref, key=key, direction="input"))
    return out


def _check_ref(ref: Any, where: str) -> None:
    if not isinstance(ref, str | os.PathLike | Artifact):
        raise TypeError(f"{where} must be a path or an Artifact, got {type(ref).__name__}")


def _output_keys(outputs: Any) -> list[str] | None:
    """``outputs=``: each key may name the file a returned table is written to."""
    if outputs is None:
        return None
    if isinstance(outputs, str):
        outputs = [outputs]
    keys = list(outputs)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"outputs must be a list of non-empty strings, got {key!r}")
        validate_path_name(key, param="outputs", purpose="the output's file name")
    if len(set(keys)) != len(keys):
        raise ValueError(f"outputs has duplicate keys: {keys}")
    return keys


def _output_paths(output_paths: Any) -> dict[str, Path]:
    if output_paths is None:
        return {}
    if not isinstance(output_paths, Mapping):
        raise TypeError("output_paths must be a mapping {key: path}")
    out = {}
    for key, path in output_paths.items():
        if not isinstance(key, str):
            raise TypeError(f"output_paths keys must be non-empty strings, got {key!r}")
        # Same rule as outputs=: one namespace of output keys per step.
        validate_path_name(key, param="output_paths", purpose="an output key")
        if isinstance(path, Artifact):
            path = path.abs_path or path.uri
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"output_paths[{key!r}] must be a path")
        out[key] = Path(os.path.abspath(os.fspath(path)))
    return out


def _snapshot(directory: Path | None, pattern: str) -> dict[str, tuple[int, int]]:
    if directory is None or not directory.exists():
        return {}
    out = {}
    for path in directory.glob(pattern):
        if path.is_file():
            st = path.stat()
            out[str(path)] = (st.st_mtime_ns, st.st_size)
    return out


def _captured(
    directory: Path | None,
    pattern: str,
    before: Mapping[str, tuple[int, int]],
    taken: set[str],
) -> list[tuple[str, Path]]:
    if directory is None:
        return []
    after = _snapshot(directory, pattern)
    changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
    out = []
    for p in changed:
        path = Path(p)
        key = path.stem
        if key in taken:
            key = path.relative_to(directory).as_posix()
        taken.add(key)
        out.append((key, path))
    return out


def _same_artifact(
    requests: list[ArtifactRequest], key: str, recorded: Mapping[str, Artifact]
) -> Artifact:
    """The recorded input behind ``key`` when one artifact was given under several keys.

    A run links an artifact once per direction (under the last key it was
    given), so every key that named the same artifact binds to that record.
    """
    for request in requests:
        if request.key == key and isinstance(request.ref, Artifact):
            for art in recorded.values():
                if art.id == request.ref.id:
                    return art
    raise KeyError(key)

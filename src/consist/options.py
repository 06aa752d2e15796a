"""Grouped, validated knobs for ``Tracker.run`` / ``Tracker.trace``.

Every option has exactly one definition and one docstring here; the tracker
facade and the top-level helpers point to these classes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from consist.models.container import ContainerSpec

CacheMode = Literal["reuse", "overwrite", "readonly"]
CacheHydration = Literal["metadata", "outputs-requested", "outputs-all", "inputs-missing"]
CodeIdentityMode = Literal["repo_git", "callable_module", "callable_source"]
OutputPolicy = Literal["warn", "error", "ignore"]
InputBinding = Literal["auto", "paths", "loaded", "none"]

_VALIDATION_ALIASES = {"strict": "eager"}
ValidateCachedOutputs = Literal["lazy", "eager", "none"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def merged(self, **overrides: Any) -> Any:
        """A copy with the non-None ``overrides`` applied (validated)."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self)(**data)


class CacheOptions(_Options):
    """How a run uses the cache.

    Attributes
    ----------
    cache_mode:
        ``"reuse"`` (default): hand back an identical completed run's outputs
        instead of executing. ``"overwrite"``: always execute and record.
        ``"readonly"``: look the cache up and execute on a miss, but persist
        nothing (no journal, no database rows).
    cache_hydration:
        What a hit puts on disk. ``"metadata"`` (default, ``None``): nothing;
        outputs are returned at their original location.
        ``"outputs-requested"``: copy the cached outputs named in
        ``output_paths`` to those paths (execute instead if a cached file is
        gone). ``"outputs-all"``: copy every cached output into the new run's
        artifact directory. ``"inputs-missing"``: before executing, restore
        missing input files from another recorded copy with the same content.
    cache_version, cache_epoch:
        Integers folded into the run identity: bump them to invalidate old
        results on purpose.
    validate_cached_outputs:
        ``"lazy"`` (default): a hit requires every cached output to be
        available with the bytes recorded when it was produced: its file
        exists and still has its recorded digest (proved by an unchanged
        stat identity, re-read when that changed), or the file is gone and
        its rows were ingested into the store (``load`` reads them from
        there). ``"eager"`` (alias ``"strict"``): every output file must
        exist and is read in full to compare digests. ``"none"``: no check
        at all; the newest identical completed run is a hit even if its
        files are gone or changed (for outputs you restore yourself, or
        never read). A file changed in place is a miss under ``"lazy"`` and
        ``"eager"``, never a hit with other bytes.
    code_identity:
        ``"repo_git"`` (default inside a git repository), ``"callable_module"``
        or ``"callable_source"``.
    code_identity_extra_deps:
        Extra files or directories folded into the code identity.
    code_identity_source_suffixes:
        Suffixes of *untracked* files that count as code in the git code
        identity of this run (case-insensitive), e.g. ``[".py", ".R"]``.
        ``None`` (default) uses the tracker's set
        (``TrackerConfig.code_identity_source_suffixes``, by default Python,
        Cython, R, Julia, MATLAB, Java, Scala, Kotlin, C, C++, Fortran, Rust,
        Go, shell and SQL). Tracked files count whatever their suffix; other
        untracked files (data, logs, outputs) are never read.
    """

    cache_mode: CacheMode = "reuse"
    cache_hydration: CacheHydration | None = None
    cache_version: int | None = None
    cache_epoch: int | None = None
    validate_cached_outputs: ValidateCachedOutputs = "lazy"
    code_identity: CodeIdentityMode | None = None
    code_identity_extra_deps: tuple[str, ...] | None = None
    code_identity_source_suffixes: frozenset[str] | None = None

    @field_validator("validate_cached_outputs", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return _VALIDATION_ALIASES.get(value, value)

    @field_validator("cache_version", "cache_epoch", mode="before")
    @classmethod
    def _int_only(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be an int, not a bool")
        return value

    @field_validator("code_identity_extra_deps", mode="before")
    @classmethod
    def _deps(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            raise ValueError("must be a list of paths, not a single string")
        return tuple(str(v) for v in value)

    @field_validator("code_identity_source_suffixes", mode="before")
    @classmethod
    def _source_suffixes(cls, value: Any) -> Any:
        if value is None:
            return None
        from consist.core.identity.code_identity_sources import normalize_suffixes

        return normalize_suffixes(value, "code_identity_source_suffixes")


class OutputPolicyOptions(_Options):
    """What to do when outputs do not match what was declared.

    Attributes
    ----------
    output_mismatch:
        The function returned a different number of values than ``outputs``
        names: ``"warn"`` (default), ``"error"`` or ``"ignore"``.
    output_missing:
        A declared output (``outputs`` / ``output_paths``) was not produced:
        ``"warn"`` (default), ``"error"`` or ``"ignore"``.
    """

    output_mismatch: OutputPolicy = "warn"
    output_missing: OutputPolicy = "warn"


class ExecutionOptions(_Options):
    """How ``Tracker.run`` calls the function.

    Attributes
    ----------
    input_binding:
        How named ``inputs`` reach parameters of the same name. ``"auto"``
        (default): a parameter annotated as a pandas DataFrame receives the
        loaded table, any other parameter the local ``Path``. ``"paths"``:
        always the ``Path``. ``"loaded"``: always the loaded data
        (``consist.load``). ``"none"``: inputs are recorded and hashed, never
        passed. Independently of this, config keys bind to parameters of the
        same name and a parameter named ``config`` receives the whole config
        (order and details: :mod:`consist.core.run.binding`).
    load_inputs:
        Legacy switch: ``True`` means ``input_binding="loaded"``, ``False``
        means ``"paths"``.
    executor:
        ``"python"`` (default): call ``fn``. ``"container"``: run
        ``container`` instead (``fn`` must be None; ``output_paths`` names what
        the container writes).
    container:
        A :class:`~consist.models.container.ContainerSpec` (or a mapping of
        its fields): image, command, environment, mounts, engine. Required
        with ``executor="container"``, refused otherwise.
    runtime_kwargs:
        Extra keyword arguments passed to the function but never hashed (for
        things like thread counts or scratch paths that do not change
        results). They win over an input or config key of the same name; the
        run then lists the parameter in ``run.meta["runtime_overrides"]``.
    inject_context:
        ``True`` passes a :class:`~consist.core.run.runner.RunContext` as the
        ``ctx`` keyword argument; a string names the parameter instead.
    """

    input_binding: InputBinding | None = None
    load_inputs: bool | None = None
    executor: Literal["python", "container"] = "python"
    container: ContainerSpec | None = None
    runtime_kwargs: dict[str, Any] = Field(default_factory=dict)
    inject_context: bool | str = False

    @field_validator("runtime_kwargs", mode="before")
    @classmethod
    def _kwargs(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of parameter name -> value")
        for key in value:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"keys must be parameter names, got {key!r}")
        return dict(value)

    @model_validator(mode="after")
    def _container_needs_executor(self) -> ExecutionOptions:
        if self.executor == "container" and self.container is None:
            raise ValueError(
                "executor='container' needs container=ContainerSpec(image=..., command=...)"
            )
        if self.executor == "python" and self.container is not None:
            raise ValueError("container=... is only used with executor='container'; set executor")
        return self

    @field_validator("inject_context")
    @classmethod
    def _ctx_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.isidentifier():
            raise ValueError(f"must be True/False or a parameter name, got {value!r}")
        return value

    @property
    def binding(self) -> str:
        """The effective input binding after applying the legacy switch."""
        if self.input_binding is not None:
            return self.input_binding
        if self.load_inputs is not None:
            return "loaded" if self.load_inputs else "paths"
        return "auto"


def refuse_unknown_tracker_options(
    options: Mapping[str, Any], tracker_fields: Collection[str]
) -> None:
    """Refuse ``Tracker()`` keyword arguments that are not among ``tracker_fields``.

    A run option passed to ``Tracker(...)`` (``cache_mode``,
    ``validate_cached_outputs``, ...) is named with where it belongs, since
    modelers migrating from per-run calls reach for the constructor first.

    Raises
    ------
    ValueError
        Naming the first unknown keyword (a ValueError, as every other invalid
        tracker option, and as pydantic raised it before this check).
    """
    unknown = [name for name in options if name not in tracker_fields]
    if not unknown:
        return
    name = unknown[0]
    for owner, calls in (
        (CacheOptions, "tracker.run(...) or begin_run(...)"),
        (OutputPolicyOptions, "tracker.run(...)"),
        (ExecutionOptions, "tracker.run(...)"),
    ):
        if name in owner.model_fields:
            raise ValueError(
                f"Tracker() got an unexpected keyword argument {name!r}: it is a per-run "
                f"option; pass it to {calls}, directly or as {owner.__name__}({name}=...)"
            )
    raise ValueError(
        f"Tracker() got an unexpected keyword argument {name!r}; the tracker's options are "
        f"{', '.join(sorted(tracker_fields))}"
    )

"""The validated arguments of one ``begin_run`` (what :class:`RunLifecycle.begin` consumes)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.core.identity.canonical import check_recordable
from consist.core.identity.code_identity import CODE_IDENTITY_MODES
from consist.core.run.active_run import ActiveRunCacheOptions
from consist.core.run.artifacts import ArtifactRequest, begin_input_requests
from consist.core.run.run_facet import build_run_facet
from consist.core.validation import (
    BEGIN_CACHE_FIELDS,
    validate_begin_cache_options,
    validate_cache_mode,
    validate_config,
    validate_metadata,
    validate_model,
    validate_named_paths,
    validate_optional_int,
    validate_optional_str,
    validate_path_list,
    validate_run_id,
    validate_tags,
)
from consist.models.artifact import Artifact
from consist.models.run import Run
from consist.options import CacheOptions

OUTPUT_POLICIES = ("warn", "error", "ignore")

__all__ = ["BeginRequest", "build_begin_request"]


@dataclass
class BeginRequest:
    """Validated arguments of ``begin_run``."""

    run: Run
    config: dict[str, Any]
    facet: dict[str, Any] | None
    input_requests: list[ArtifactRequest]
    hash_inputs: list[tuple[str, str]]
    cache: ActiveRunCacheOptions
    artifact_dir: Any
    allow_external_paths: bool | None
    code_identity: str | None = None
    code_identity_extra_deps: list[str] = field(default_factory=list)
    code_identity_source_suffixes: frozenset[str] | None = None
    cache_version: int | None = None
    cache_epoch: int | None = None
    fn: Callable[..., Any] | None = None
    output_paths: dict[str, Path] = field(default_factory=dict)
    output_missing: str = "warn"
    hash_inputs_in_config: bool = False
    config_digests: dict[str, str] = field(default_factory=dict)  # a config plan's files,
    config_roots: tuple[str, ...] = ()  # whose tree then does not count as code
    # A container step: its identity payload, computed from the built inputs
    # (see consist.core.containers.plan.ContainerPlan.identity).
    container: Callable[[list[Artifact]], dict[str, Any]] | None = None


def build_begin_request(
    run_id: Any,
    model: Any,
    *,
    config: Any = None,
    inputs: Iterable[Any] | None = None,
    tags: Any = None,
    description: Any = None,
    cache_mode: Any = "reuse",
    artifact_dir: Any = None,
    allow_external_paths: bool | None = None,
    facet: Any = None,
    facet_from: Any = None,
    hash_inputs: Any = None,
    code_identity: Any = None,
    code_identity_extra_deps: Any = None,
    facet_schema_version: Any = None,
    facet_index: Any = True,
    parent_run_id: Any = None,
    cache_options: CacheOptions | None = None,
    fn: Callable[..., Any] | None = None,
    run_id_is_new: bool = False,
    check_new_run_id: Callable[[str], None],
    **kwargs: Any,
) -> BeginRequest:
    """Validate every ``begin_run`` argument into a :class:`BeginRequest`; writes nothing.

    ``check_new_run_id`` refuses an explicit ``run_id`` the store already holds.

    Raises
    ------
    TypeError, ValueError
        For any invalid argument, naming it.
    """
    run_id = validate_run_id(run_id)
    model = validate_model(model)
    config_data = validate_config(config)
    tags = validate_tags(tags)
    description = validate_optional_str(description, "description", max_length=100_000)
    cache_mode = validate_cache_mode(cache_mode)
    if allow_external_paths is not None and not isinstance(allow_external_paths, bool):
        raise TypeError("allow_external_paths must be True, False or None")
    year = validate_optional_int(kwargs.pop("year", None), "year")
    iteration = validate_optional_int(kwargs.pop("iteration", None), "iteration")
    stage = validate_optional_str(kwargs.pop("stage", None), "stage")
    phase = validate_optional_str(kwargs.pop("phase", None), "phase")
    parent_run_id = validate_run_id(parent_run_id, param="parent_run_id") if parent_run_id else None
    # Cache and output-policy knobs are options, never run metadata.
    flat_cache = {k: kwargs.pop(k) for k in BEGIN_CACHE_FIELDS if k in kwargs}
    output_missing = kwargs.pop("output_missing", "warn")
    if output_missing not in OUTPUT_POLICIES:
        raise ValueError(
            f"output_missing={output_missing!r} is not supported; use one of "
            f"{', '.join(OUTPUT_POLICIES)}"
        )
    meta = validate_metadata(kwargs, param="metadata (**kwargs)")
    if code_identity is not None and code_identity not in CODE_IDENTITY_MODES:
        raise ValueError(
            f"code_identity={code_identity!r} is not supported; use one of "
            f"{', '.join(CODE_IDENTITY_MODES)}"
        )
    extra_deps = validate_path_list(code_identity_extra_deps, "code_identity_extra_deps")
    if facet is not None:  # recorded in the snapshot too: the config's rule applies
        check_recordable(facet, "facet")
    run_facet = build_run_facet(
        facet,
        facet_from,
        config_data,
        config_source=config,
        facet_schema_version=facet_schema_version,
        facet_index=facet_index,
    )
    facet_data, facet_schema_name = run_facet.data, run_facet.schema_name
    facet_index = run_facet.indexed
    input_requests = begin_input_requests(inputs)
    hashed = validate_named_paths(hash_inputs, "hash_inputs")
    options = validate_begin_cache_options(cache_mode, cache_options, flat_cache)
    if cache_options is not None:
        code_identity = code_identity or options.code_identity
        extra_deps = extra_deps or list(options.code_identity_extra_deps or ())
    if fn is None and code_identity in ("callable_module", "callable_source"):
        raise ValueError(
            f"code_identity={code_identity!r} hashes a step function, and begin_run/"
            "start_run/trace execute none; use the default 'repo_git' (run inside a git "
            "repository) or tracker.run(fn=...)"
        )
    if facet_schema_version is not None and facet_data is None:
        raise ValueError(
            "facet_schema_version is set but the run has no facet; pass facet=... or "
            "facet_from=[...] (or drop facet_schema_version)"
        )
    if not run_id_is_new:
        check_new_run_id(run_id)

    if stage is not None:
        meta["stage"] = stage
    if phase is not None:
        meta["phase"] = phase
    if code_identity is not None:
        meta["code_identity"] = code_identity
    if extra_deps:
        meta["code_identity_extra_deps"] = extra_deps
    if facet_data is not None:
        meta["facet_schema_version"] = facet_schema_version
        meta["facet_index"] = facet_index
        if facet_schema_name and "facet_schema_name" not in meta:
            meta["facet_schema_name"] = facet_schema_name
    meta["host"] = socket.gethostname()
    meta["pid"] = os.getpid()
    run = Run(
        id=run_id,
        model_name=model,
        description=description,
        status="running",
        tags=tags,
        year=year,
        iteration=iteration,
        stage=stage,
        phase=phase,
        parent_run_id=parent_run_id,
        meta=meta,
    )
    return BeginRequest(
        run=run,
        config=config_data,
        facet=facet_data,
        input_requests=input_requests,
        hash_inputs=hashed,
        cache=ActiveRunCacheOptions(
            cache_mode=options.cache_mode,
            cache_hydration=options.cache_hydration,
            validate_cached_outputs=options.validate_cached_outputs,
        ),
        artifact_dir=artifact_dir,
        allow_external_paths=allow_external_paths,
        code_identity=code_identity,
        code_identity_extra_deps=extra_deps,
        code_identity_source_suffixes=options.code_identity_source_suffixes,
        cache_version=options.cache_version,
        cache_epoch=options.cache_epoch,
        fn=fn,
        output_missing=output_missing,
    )

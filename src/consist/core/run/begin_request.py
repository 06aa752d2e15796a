"""The validated arguments of one ``begin_run`` (what :class:`RunLifecycle.begin` consumes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.core.run.active_run import ActiveRunCacheOptions
from consist.core.run.artifacts import ArtifactRequest
from consist.models.artifact import Artifact
from consist.models.run import Run

__all__ = ["BeginRequest"]


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

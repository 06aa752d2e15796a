"""Consist: caching and provenance for scientific simulation workflows.

Public names are imported lazily (PEP 562), so ``import consist`` stays cheap
and heavy libraries load only when a feature needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Tracker": "consist.core.tracker",
    "TrackerConfig": "consist.core.tracker_config",
    "Run": "consist.models.run",
    "Artifact": "consist.models.artifact",
    "ConsistRecord": "consist.models.records",
    "RunArtifacts": "consist.models.records",
    "ActiveRunCacheOptions": "consist.core.run.active_run",
    "rebuild_from_journal": "consist.core.store.recovery",
    "RunResult": "consist.models.results",
    "RunSet": "consist.core.query.runset",
    "IngestSchemaError": "consist.core.store.hot_store",
    "CacheOptions": "consist.options",
    "ExecutionOptions": "consist.options",
    "OutputPolicyOptions": "consist.options",
    "ConsistRunError": "consist.core.run.runner",
    "ContainerSpec": "consist.models.container",
    "ContainerRunError": "consist.core.run.container_step",
    "ContainerEngineError": "consist.core.containers.engines",
    "RunContext": "consist.core.run.runner",
    "output_path": "consist.api",
    "define_step": "consist.api",
    "use_tracker": "consist.api",
    "current_tracker": "consist.api",
    "capture_outputs": "consist.api",
    "load": "consist.api",
    "load_df": "consist.api",
    "run": "consist.api",
    "IndexBySpec": "consist.core.query.run_index",
    "index_by_field": "consist.core.query.run_index",
    "index_by_facet": "consist.core.query.run_index",
    "trace": "consist.api",
    "scenario": "consist.api",
    "ScenarioContext": "consist.core.workflow.scenario",
    "MissingOutputsError": "consist.core.workflow.scenario",
    "Coupler": "consist.core.workflow.coupler",
    "SweepResult": "consist.core.workflow.sweep",
    "SweepResults": "consist.core.workflow.sweep",
    "SweepError": "consist.core.workflow.sweep",
    "ConfigAdapter": "consist.core.run.config_plan",
    "ConfigAdapterOptions": "consist.core.run.config_plan",
    "ConfigContribution": "consist.core.run.config_plan",
    "ConfigPlan": "consist.core.run.config_plan",
}

__all__ = [
    "ActiveRunCacheOptions",
    "Artifact",
    "CacheOptions",
    "ConfigAdapter",
    "ConfigAdapterOptions",
    "ConfigContribution",
    "ConfigPlan",
    "ConsistRecord",
    "ConsistRunError",
    "ContainerEngineError",
    "ContainerRunError",
    "ContainerSpec",
    "Coupler",
    "ExecutionOptions",
    "IndexBySpec",
    "IngestSchemaError",
    "MissingOutputsError",
    "OutputPolicyOptions",
    "Run",
    "RunArtifacts",
    "RunContext",
    "RunResult",
    "RunSet",
    "ScenarioContext",
    "SweepError",
    "SweepResult",
    "SweepResults",
    "Tracker",
    "TrackerConfig",
    "__version__",
    "capture_outputs",
    "current_tracker",
    "define_step",
    "index_by_facet",
    "index_by_field",
    "load",
    "load_df",
    "output_path",
    "rebuild_from_journal",
    "run",
    "scenario",
    "trace",
    "use_tracker",
]

if TYPE_CHECKING:  # pragma: no cover
    from consist.api import (
        capture_outputs,
        current_tracker,
        define_step,
        load,
        load_df,
        output_path,
        run,
        scenario,
        trace,
        use_tracker,
    )
    from consist.core.containers.engines import ContainerEngineError
    from consist.core.query.run_index import IndexBySpec, index_by_facet, index_by_field
    from consist.core.query.runset import RunSet
    from consist.core.run.active_run import ActiveRunCacheOptions
    from consist.core.run.config_plan import (
        ConfigAdapter,
        ConfigAdapterOptions,
        ConfigContribution,
        ConfigPlan,
    )
    from consist.core.run.container_step import ContainerRunError
    from consist.core.run.runner import ConsistRunError, RunContext
    from consist.core.store.hot_store import IngestSchemaError
    from consist.core.store.recovery import rebuild_from_journal
    from consist.core.tracker import Tracker
    from consist.core.tracker_config import TrackerConfig
    from consist.core.workflow.coupler import Coupler
    from consist.core.workflow.scenario import MissingOutputsError, ScenarioContext
    from consist.core.workflow.sweep import SweepError, SweepResult, SweepResults
    from consist.models.artifact import Artifact
    from consist.models.container import ContainerSpec
    from consist.models.records import ConsistRecord, RunArtifacts
    from consist.models.results import RunResult
    from consist.models.run import Run
    from consist.options import CacheOptions, ExecutionOptions, OutputPolicyOptions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'consist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

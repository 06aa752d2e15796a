"""Composite records: the journal snapshot and a run's artifacts by key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from consist.models.artifact import Artifact
from consist.models.run import Run

JOURNAL_FORMAT = "consist-run/1"


class ConsistRecord(BaseModel):
    """Everything recorded about one run: the JSON snapshot in ``consist_runs/``.

    It carries the full artifact records so that the database can be rebuilt
    from the journal alone.
    """

    # NaN and +/-inf are written as the JSON constants NaN / Infinity /
    # -Infinity (which Python's json and pydantic read back), not as null:
    # the snapshot must hold the config that ran (see canonical.check_recordable).
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="constants")

    format: str = JOURNAL_FORMAT
    run: Run
    config: dict[str, Any] = Field(default_factory=dict)
    facet: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    inputs: list[Artifact] = Field(default_factory=list)
    outputs: list[Artifact] = Field(default_factory=list)
    updated_ns: int = 0
    # The completed run a cache hit was served from (``tracker.last_run``);
    # runtime only: the journal keeps it as ``run.meta["cache_source"]``.
    cached_run: Run | None = Field(default=None, exclude=True)


class RunArtifacts(BaseModel):
    """A run's artifacts, keyed by artifact key."""

    inputs: dict[str, Artifact] = Field(default_factory=dict)
    outputs: dict[str, Artifact] = Field(default_factory=dict)

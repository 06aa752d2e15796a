"""State of the one active run, passed explicitly to the services that need it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run


@dataclass
class ActiveRunCacheOptions:
    """Cache behaviour of the active run (see ``suspend_cache_options``).

    Attributes
    ----------
    cache_mode:
        ``"reuse"``, ``"overwrite"`` or ``"readonly"``.
    cache_hydration:
        How a hit's outputs are materialised (``None`` = metadata only).
    validate_cached_outputs:
        ``"lazy"``, ``"eager"`` or ``"none"``.
    """

    cache_mode: str = "reuse"
    cache_hydration: str | None = None
    validate_cached_outputs: str = "lazy"


@dataclass
class ActiveRun:
    """The record being built plus per-run working state.

    Attributes
    ----------
    record:
        The snapshot that is journaled and synced to the store.
    artifact_dir:
        Directory where this run's managed outputs go.
    allow_external_paths:
        Effective setting for this run.
    cache:
        Cache options in force.
    unsynced:
        ``(artifact, direction)`` pairs not yet written to the store.
    cached_outputs / cached_inputs:
        Artifacts handed back by a cache hit, by key. The cached outputs are
        attached to the record when the run ends as a hit; until then
        :meth:`artifacts` shows them beside the run's own outputs.
    cached_run:
        The completed run a cache hit is served from.
    output_missing:
        Policy (``warn`` / ``error`` / ``ignore``) for outputs logged before
        their file existed that are still missing when the run ends.
    pending_outputs:
        Those outputs, by key: ``(artifact returned to the caller, request)``;
        hashed and attached when the run ends.
    """

    record: ConsistRecord
    artifact_dir: Path
    allow_external_paths: bool
    cache: ActiveRunCacheOptions = field(default_factory=ActiveRunCacheOptions)
    unsynced: list[tuple[Artifact, str]] = field(default_factory=list)
    cached_outputs: dict[str, Artifact] = field(default_factory=dict)
    cached_inputs: dict[str, Artifact] = field(default_factory=dict)
    cache_hit: bool = False
    cached_run: Run | None = None
    output_missing: str = "warn"
    pending_outputs: dict[str, tuple[Artifact, Any]] = field(default_factory=dict)
    persist: bool = True
    store_synced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    _positions: dict[str, dict[uuid.UUID, int]] = field(default_factory=dict, repr=False)

    @property
    def run(self) -> Run:
        """The run record."""
        return self.record.run

    def add_artifact(self, artifact: Artifact, direction: str) -> None:
        """Attach an artifact to the record (replacing one with the same id)."""
        bucket = self.record.inputs if direction == "input" else self.record.outputs
        index = self._index(bucket, direction)
        position = index.get(artifact.id)
        if position is None:
            index[artifact.id] = len(bucket)
            bucket.append(artifact)
        else:
            bucket[position] = artifact
        self.unsynced.append((artifact, direction))

    def _index(self, bucket: list[Artifact], direction: str) -> dict[uuid.UUID, int]:
        """Artifact id -> position in ``bucket`` (a run logging 1,000 files stays linear).

        Rebuilt whenever the list was changed other than through
        :meth:`add_artifact` (its length or an indexed entry no longer agree).
        """
        index = self._positions.get(direction)
        if index is not None and len(index) == len(bucket):
            last = bucket[-1] if bucket else None
            if last is None or index.get(last.id) == len(bucket) - 1:
                return index
        index = {a.id: i for i, a in enumerate(bucket)}
        self._positions[direction] = index
        return index

    def artifacts(self, direction: str) -> dict[str, Artifact]:
        """The run's artifacts of one direction, by key (last logged wins).

        During a cache hit the cached outputs count as outputs.
        """
        bucket = self.record.inputs if direction == "input" else self.record.outputs
        own = {a.key: a for a in bucket}
        if direction == "output" and self.cache_hit:
            return {**self.cached_outputs, **own}
        return own

    def has_artifact(self, artifact_id: uuid.UUID, direction: str) -> bool:
        """Whether an artifact with this id is already attached."""
        bucket = self.record.inputs if direction == "input" else self.record.outputs
        return artifact_id in self._index(bucket, direction)

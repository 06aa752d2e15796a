"""Read-side methods of the Tracker: runs, records, artifacts, raw SQL.

Mixed into :class:`~consist.core.tracker.Tracker`; every method delegates to
the metadata store or the journal.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from consist.core.artifacts import ArtifactBuilder
from consist.core.paths import PathResolver
from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord, RunArtifacts
from consist.models.run import Run


class TrackerQueries:
    """Query methods shared by the Tracker facade (see the spec for each)."""

    store: MetadataStore | None
    journal: Journal
    paths: PathResolver
    artifacts: ArtifactBuilder
    _schemas: Any

    def _require_store(self, what: str) -> MetadataStore:
        if self.store is None:
            raise RuntimeError(f"{what} needs a database; construct the Tracker with db_path=...")
        return self.store

    def run_query(self, query: Any) -> list[Any]:
        """Execute a SQLAlchemy/SQLModel statement (or SQL text) on the store.

        Raises
        ------
        RuntimeError
            If no database is configured.
        """
        return self._require_store("run_query").run_query(query)

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None (also when no database is configured)."""
        return self.store.get_run(run_id) if self.store is not None else None

    def get_run_record(self, run_id: str, *, allow_missing: bool = False) -> ConsistRecord | None:
        """The full JSON snapshot of a run from ``consist_runs/<id>.json``.

        Raises
        ------
        FileNotFoundError
            If the snapshot is missing or unreadable and ``allow_missing`` is False.
        """
        try:
            record = self.journal.read(run_id)
        except (OSError, ValueError) as exc:
            if allow_missing:
                return None
            raise FileNotFoundError(f"snapshot of run {run_id!r} is unreadable: {exc}") from exc
        if record is None and not allow_missing:
            raise FileNotFoundError(
                f"no snapshot for run {run_id!r} at {self.journal.path_for(run_id)}"
            )
        return record

    def get_run_config(self, run_id: str, *, allow_missing: bool = False) -> dict[str, Any] | None:
        """The full config a run was started with (from its snapshot)."""
        record = self.get_run_record(run_id, allow_missing=allow_missing)
        return None if record is None else record.config

    def get_artifact(
        self, key_or_id: str | uuid.UUID, *, run_id: str | None = None
    ) -> Artifact | None:
        """An artifact by key (newest) or UUID, optionally scoped to ``run_id``."""
        if self.store is None:
            return None
        artifact_id = _as_uuid(key_or_id)
        if artifact_id is not None:
            art = self.store.get_artifact_by_id(artifact_id)
            if art is not None and run_id is not None:
                linked = {a.id for a, _ in self.store.get_run_artifacts(run_id)}
                art = art if art.id in linked else None
            if art is not None:
                return self._localize(art)
            if isinstance(key_or_id, uuid.UUID):
                return None
        art = self.store.get_artifact_by_key(str(key_or_id), run_id=run_id)
        return self._localize(art) if art is not None else None

    def get_artifact_by_uri(
        self, uri: str, *, table_path: str | None = None, array_path: str | None = None
    ) -> Artifact | None:
        """The newest artifact recorded at ``uri`` (a URI or a local path)."""
        if self.store is None:
            return None
        if "://" not in uri and not uri.startswith("./"):
            uri = self.paths.virtualize(uri)
        art = self.store.get_artifact_by_uri(uri, table_path=table_path, array_path=array_path)
        return self._localize(art) if art is not None else None

    def get_artifacts_for_run(self, run_id: str) -> RunArtifacts:
        """A run's inputs and outputs, keyed by the key the run logged them with."""
        result = RunArtifacts()
        if self.store is None:
            return result
        for art, direction in self.store.get_run_artifacts(run_id):
            bucket = result.inputs if direction == "input" else result.outputs
            bucket[art.key] = self._localize(art)
        return result

    def get_run_inputs(self, run_id: str) -> dict[str, Artifact]:
        """Input artifacts of a run by key (empty without a database)."""
        return self.get_artifacts_for_run(run_id).inputs

    def get_run_outputs(self, run_id: str) -> dict[str, Artifact]:
        """Output artifacts of a run by key (empty without a database)."""
        return self.get_artifacts_for_run(run_id).outputs

    def resolve_historical_path(self, artifact: Artifact, run: Run) -> Path:
        """Where ``artifact`` lives on disk in the workspace of ``run``.

        The URI is resolved through this tracker's mounts and ``run_dir``; a
        ``./`` URI of a run recorded under another ``run_dir`` resolves
        relative to this one.
        """
        if not isinstance(artifact, Artifact):
            raise TypeError("artifact must be an Artifact")
        if not isinstance(run, Run):
            raise TypeError("run must be a Run")
        return Path(self.paths.resolve_uri(artifact.uri))

    def get_registered_schema(self, schema_name: str, default: type | None = None) -> type | None:
        """A registered SQLModel class by exact class name, else ``default``.

        Raises
        ------
        TypeError
            If ``schema_name`` is not a string.
        ValueError
            If ``schema_name`` is empty or whitespace.
        """
        if not isinstance(schema_name, str):
            raise TypeError(f"schema_name must be a string, got {type(schema_name).__name__}")
        if not schema_name.strip():
            raise ValueError("schema_name must be a non-empty class name")
        return self._schemas.get(schema_name, default)

    def _localize(self, art: Artifact) -> Artifact:
        return art.with_local_path(self.artifacts.local_path(art))


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) in (32, 36):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None

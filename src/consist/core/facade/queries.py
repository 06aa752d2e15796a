"""Read-side methods of the Tracker: runs, records, artifacts, raw SQL.

Mixed into :class:`~consist.core.tracker.Tracker`; every method delegates to
the metadata store or the journal.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Hashable
from datetime import datetime
from pathlib import Path
from typing import Any

from consist.core.paths import PathResolver
from consist.core.query.run_index import IndexBySpec, key_runs, matches_metadata, parse_index_by
from consist.core.run.artifacts import ArtifactBuilder
from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord, RunArtifacts
from consist.models.run import Run


class TrackerRunQueries:
    """find_runs and friends (mixed into the Tracker through TrackerQueries)."""

    store: MetadataStore | None

    def find_runs(
        self,
        tags: list[str] | None = None,
        year: int | None = None,
        iteration: int | None = None,
        stage: str | None = None,
        phase: str | None = None,
        model: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 100,
        index_by: str | IndexBySpec | None = None,
        name: str | None = None,
        since: datetime | str | None = None,
    ) -> list[Run] | dict[Hashable, Run]:
        """Runs matching every given filter, newest first.

        Parameters
        ----------
        tags:
            Runs carrying all of these tags.
        year, iteration, stage, phase, model, status, parent_id:
            Exact matches on the run's fields (``parent_id`` is the scenario
            or parent run id).
        metadata:
            Exact matches against ``run.meta`` (applied client-side, before
            ``limit``).
        limit:
            Maximum number of runs.
        index_by:
            Return a dict instead: ``"year"`` or any Run attribute,
            ``"facet.<key>"`` / ``"facet:<key>"`` for a persisted facet value,
            or :func:`index_by_field` / :func:`index_by_facet`. Runs sharing a
            key: the newest wins.
        name:
            Alias filter on the model name.
        since:
            Only runs created at or after this moment: a ``datetime`` or an
            ISO 8601 string (``"2026-12-04"``, ``"2026-12-04T18:00"``). A
            value without a time zone is the machine's local time.

        Returns
        -------
        list[Run] | dict
            Empty when no database is configured.

        Raises
        ------
        TypeError
            If ``index_by`` is of an unsupported type.
        ValueError
            If ``index_by`` names no Run attribute, or ``limit`` is negative.
        """
        spec = parse_index_by(index_by) if index_by is not None else None
        runs = self._select_runs(
            dict(
                year=year,
                iteration=iteration,
                stage=stage,
                phase=phase,
                model=model,
                name=name,
                status=status,
                parent_id=parent_id,
                since=_moment(since, "since"),
            ),
            tags=tags,
            metadata=metadata,
            limit=limit,
        )
        if spec is None:
            return runs
        return key_runs(runs, spec, self._facet_values_for)

    def _select_runs(
        self,
        filters: dict[str, Any],
        *,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        limit: int | None,
        order: str = "newest",
    ) -> list[Run]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        _check_tags_metadata(tags, metadata)
        if self.store is None:
            return []
        if not metadata:
            return self.store.query_runs(filters, tags=tags, order=order, limit=limit)
        matched = [
            r
            for r in self.store.query_runs(filters, tags=tags, order=order, limit=None)
            if matches_metadata(r, metadata)
        ]
        return matched if limit is None else matched[:limit]

    def _facet_values_for(self, runs: list[Run], spec: IndexBySpec) -> dict[str, Any]:
        """Facet values by run id (each run's own namespace unless the spec names one)."""
        if self.store is None:
            return {}
        return dict(
            self.store.facet_values([r.id for r in runs], spec.name, namespace=spec.namespace)
        )

    def find_run(self, **kwargs: Any) -> Run:
        """Exactly one run matching the filters of :meth:`find_runs`.

        ``id=`` / ``run_id=`` look the run up by primary key.

        Raises
        ------
        ValueError
            If no run, or more than one run, matches; or ``limit`` /
            ``index_by`` is given (find_run always checks every match, and
            returns one run).
        """
        run_id = kwargs.pop("id", None) or kwargs.pop("run_id", None)
        if run_id is not None:
            if kwargs:
                raise ValueError(f"find_run(id=...) takes no other filters, got {sorted(kwargs)}")
            run = self.get_run(run_id)  # type: ignore[attr-defined]
            if run is None:
                raise ValueError(f"no run with id {run_id!r}")
            return run
        for param in ("limit", "index_by"):
            if param in kwargs:
                raise ValueError(
                    f"find_run does not take {param}: it returns the single run matching the "
                    f"filters; use find_runs(..., {param}=...) to list several"
                )
        runs = self.find_runs(limit=2, **kwargs)
        assert isinstance(runs, list)
        if not runs:
            raise ValueError(f"no run matches {kwargs}")
        if len(runs) > 1:
            raise ValueError(
                f"more than one run matches {kwargs} (e.g. {runs[0].id!r} and {runs[1].id!r}); "
                "add filters or use find_runs"
            )
        return runs[0]

    def find_latest_run(
        self,
        *,
        parent_id: str | None = None,
        model: str | None = None,
        status: str | None = None,
        year: int | None = None,
        stage: str | None = None,
        phase: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10_000,
    ) -> Run | None:
        """The latest matching run: highest iteration first, then newest.

        Parameters
        ----------
        parent_id, model, status, year, stage, phase:
            Exact matches on the run's fields.
        tags:
            Runs carrying all of these tags.
        metadata:
            Exact matches against ``run.meta`` (client-side).
        limit:
            How many runs to consider: the ``limit`` newest runs matching
            every filter (``metadata`` included); the latest is chosen among
            them.

        Returns
        -------
        Run | None
            None when nothing matches (or without a database).

        Raises
        ------
        ValueError
            If ``limit`` is not a non-negative int.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        filters = dict(
            parent_id=parent_id, model=model, status=status, year=year, stage=stage, phase=phase
        )
        if not metadata:
            _check_tags_metadata(tags, metadata)
            if self.store is None:
                return None
            runs = self.store.query_runs(
                filters, tags=tags, order="latest_iteration", limit=1, window=limit
            )
            return runs[0] if runs else None
        considered = self._select_runs(filters, tags=tags, metadata=metadata, limit=limit)
        if not considered:
            return None
        return max(considered, key=_latest_rank)

    def get_latest_run_id(self, **kwargs: Any) -> str:
        """The id of :meth:`find_latest_run` for the same filters.

        Raises
        ------
        ValueError
            If no run matches.
        """
        run = self.find_latest_run(**kwargs)
        if run is None:
            raise ValueError(f"no run matches {kwargs}")
        return run.id

    def history(self, limit: int = 10, tags: list[str] | None = None) -> Any:
        """Recent runs as a pandas DataFrame (newest first).

        Parameters
        ----------
        limit:
            Maximum number of runs.
        tags:
            Keep runs carrying any of these tags.

        Returns
        -------
        pandas.DataFrame
            Columns: id, model_name, status, year, iteration, stage, phase,
            tags, parent_run_id, created_at, ended_at, duration_s, cache_hit,
            signature. Empty (same columns) without a database.
        """
        import pandas as pd

        if isinstance(tags, str):
            raise TypeError(f"tags must be a list of strings: use tags=[{tags!r}]")
        rows = self.store.history_rows(limit, tags) if self.store is not None else []
        frame = pd.DataFrame.from_records(rows, columns=list(HISTORY_COLUMNS))
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["ended_at"] = pd.to_datetime(frame["ended_at"], utc=True)
        frame.insert(11, "duration_s", (frame["ended_at"] - frame["created_at"]).dt.total_seconds())
        return frame

    def find_artifacts(
        self,
        *,
        creator: str | Run | None = None,
        consumer: str | Run | None = None,
        key: str | None = None,
        driver: str | None = None,
        direction: str | None = None,
        limit: int = 100,
    ) -> list[Artifact]:
        """Artifacts output by ``creator`` and/or input to ``consumer``, newest first.

        Parameters
        ----------
        creator, consumer:
            A run (or run id) that logged the artifact as an output / as an
            input. Artifacts then carry the key and metadata that run logged
            them with.
        key:
            Exact key (the run-local key when ``creator`` or ``consumer`` is
            given).
        driver:
            Exact driver, e.g. ``"parquet"`` or ``"csv"``.
        direction:
            ``"input"`` or ``"output"``: only artifacts that at least one run
            logged in that direction (raw inputs never produced by a run are
            inputs only).
        limit:
            Maximum number of artifacts.

        Returns
        -------
        list[Artifact]
            Newest first; empty without a database.

        Raises
        ------
        ValueError
            If ``direction`` is not ``"input"`` or ``"output"``, or ``limit``
            is negative.
        """
        if direction is not None and direction not in ("input", "output"):
            raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        if self.store is None:
            return []
        creator_id = creator.id if isinstance(creator, Run) else creator
        consumer_id = consumer.id if isinstance(consumer, Run) else consumer
        found = self.store.find_artifacts(
            creator=creator_id,
            consumer=consumer_id,
            key=key,
            driver=driver,
            direction=direction,
            limit=limit,
        )
        return [self._localize(a) for a in found]  # type: ignore[attr-defined]

    def search_runs(self, text: str, *, limit: int = 50) -> list[Run]:
        """Runs mentioning ``text``, newest first.

        A run matches when ``text`` occurs (case-insensitively, as a
        substring) in its id, its model name, one of its tags, its
        description, or the key of an artifact it logged (input or output).

        Parameters
        ----------
        text:
            The text to look for (surrounding whitespace is ignored).
        limit:
            Maximum number of runs.

        Returns
        -------
        list[Run]
            Newest first; empty without a database.

        Raises
        ------
        TypeError
            If ``text`` is not a string.
        ValueError
            If ``text`` is empty or whitespace, or ``limit`` is negative.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text must contain something to search for")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        if self.store is None:
            return []
        return self.store.search_runs(text.strip(), limit)

    def store_summary(self) -> dict[str, Any]:
        """What the store holds: runs by model and status, date range, artifacts, file size.

        Returns
        -------
        dict
            ``{"db_path", "db_size_bytes", "runs", "cache_hits", "by_status",
            "by_model", "first_run_at", "last_run_at", "artifacts", "links",
            "scenarios"}``: ``by_status`` maps status to a count; ``by_model``
            lists ``{"model", "runs", "cache_hits", "statuses": {status:
            count}}`` by model name; ``first_run_at`` / ``last_run_at`` are
            UTC datetimes (None without runs); ``db_size_bytes`` counts the
            DuckDB file and its write-ahead log; ``scenarios`` counts scenario
            header runs. Without a database: ``db_path`` is None and every
            count is 0.
        """
        summary: dict[str, Any] = {
            "db_path": None,
            "db_size_bytes": 0,
            "runs": 0,
            "cache_hits": 0,
            "by_status": {},
            "by_model": [],
            "first_run_at": None,
            "last_run_at": None,
            "artifacts": 0,
            "links": 0,
            "scenarios": 0,
        }
        if self.store is None:
            return summary
        counts = self.store.store_counts()
        models: dict[str, dict[str, Any]] = {}
        for model, status, count, hits in counts["by_model"]:
            entry = models.setdefault(
                model, {"model": model, "runs": 0, "cache_hits": 0, "statuses": {}}
            )
            entry["runs"] += count
            entry["cache_hits"] += hits
            entry["statuses"][status] = count
            summary["by_status"][status] = summary["by_status"].get(status, 0) + count
        db_path = self.store.db_path
        size = sum(
            os.path.getsize(path) for path in (db_path, db_path + ".wal") if os.path.isfile(path)
        )
        summary.update(
            db_path=db_path,
            db_size_bytes=size,
            runs=sum(m["runs"] for m in models.values()),
            cache_hits=sum(m["cache_hits"] for m in models.values()),
            by_model=list(models.values()),
            first_run_at=counts["first_run_at"],
            last_run_at=counts["last_run_at"],
            artifacts=counts["artifacts"],
            links=counts["links"],
            scenarios=counts["scenarios"],
        )
        return summary

    def load_input_bundle(self, run_id: str) -> dict[str, Artifact]:
        """The outputs of a "bundle" run, by key, ready to pass as ``inputs=``.

        Raises
        ------
        ValueError
            If the run does not exist or has no output artifacts.
        """
        if self.store is None or self.store.get_run(run_id) is None:
            raise ValueError(f"no run {run_id!r} to load an input bundle from")
        outputs = self.get_run_outputs(run_id)  # type: ignore[attr-defined]
        if not outputs:
            raise ValueError(f"run {run_id!r} has no output artifacts to use as a bundle")
        return outputs

    def get_config_bundle(
        self,
        run_id: str,
        *,
        adapter: Any = None,
        role: str = "bundle",
        allow_missing: bool = False,
    ) -> Path | None:
        """The local path of a run's config artifact with ``meta["config_role"] == role``.

        With ``adapter`` (a name, or an object with a ``name``), only
        artifacts of that adapter match (``artifact.meta["config_adapter"]``
        or ``["adapter"]``, or the run's ``meta["config_adapter"]``). Several
        matches: sorted by (key, created_at, id), the first wins.

        Raises
        ------
        ValueError
            If nothing matches and ``allow_missing`` is False.
        """
        adapter_name = _adapter_name(adapter)
        run = self.store.get_run(run_id) if self.store is not None else None
        if run is None:
            if allow_missing:
                return None
            raise ValueError(f"no run {run_id!r}")
        found = self.get_artifacts_for_run(run_id)  # type: ignore[attr-defined]
        run_adapter = run.meta.get("config_adapter")
        candidates = []
        for art in [*found.inputs.values(), *found.outputs.values()]:
            if art.meta.get("config_role") != role:
                continue
            if adapter_name is not None:
                own = art.meta.get("config_adapter") or art.meta.get("adapter")
                if (own or run_adapter) != adapter_name:
                    continue
            candidates.append(art)
        candidates.sort(key=lambda a: (a.key, a.created_at, str(a.id)))
        if not candidates:
            if allow_missing:
                return None
            raise ValueError(
                f"run {run_id!r} has no artifact with config_role={role!r}"
                + (f" for adapter {adapter_name!r}" if adapter_name else "")
            )
        chosen = candidates[0]
        return Path(chosen.abs_path) if chosen.abs_path else Path(chosen.uri)


class TrackerQueries(TrackerRunQueries):
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

        ``Run`` / ``Artifact`` stand for their tables in statements
        (``select(Run).where(Run.model_name == "x")``) and come back as
        records, artifacts with their local ``path`` resolved.

        Raises
        ------
        RuntimeError
            If no database is configured.
        """
        rows = self._require_store("run_query").run_query(query)
        for row in rows:
            for value in row if isinstance(row, tuple) else (row,):
                if isinstance(value, Artifact):
                    self._localize(value)
        return rows

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None (also when no database is configured)."""
        return self.store.get_run(run_id) if self.store is not None else None

    def get_run_record(self, run_id: str, *, allow_missing: bool = False) -> ConsistRecord | None:
        """The full JSON snapshot of a run from ``consist_runs/<id>.json``.

        Raises
        ------
        FileNotFoundError
            If the snapshot is missing or unreadable and ``allow_missing`` is
            False. A file whose content names another run (copied or renamed
            by hand) counts as unreadable: it is never returned as ``run_id``.
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
        relative to this one. When ``run`` was a cache hit that copied its
        outputs into its own artifact directory
        (``cache_hydration="outputs-all"``), an output of that run resolves
        to its copy there.

        Parameters
        ----------
        artifact : Artifact
            The artifact whose historical location should be resolved.
        run : Run
            The run that produced or consumed it (as recorded in the store,
            or in the run's journal snapshot without a database).

        Returns
        -------
        Path
            The artifact's path in that run's workspace.

        Raises
        ------
        TypeError
            If ``artifact`` or ``run`` has the wrong type.
        ValueError
            If ``artifact`` is not an input or output of ``run``.
        """
        if not isinstance(artifact, Artifact):
            raise TypeError("artifact must be an Artifact")
        if not isinstance(run, Run):
            raise TypeError("run must be a Run")
        direction = self._link_direction(artifact, run)
        if direction is None:
            raise ValueError(
                f"artifact {artifact.key!r} ({artifact.id}) is not an input or output of run "
                f"{run.id!r}; pass the run that produced or consumed it"
            )
        recorded_dir = (run.meta or {}).get("artifact_dir")
        if (
            direction == "output"
            and (run.meta or {}).get("cache_hit")
            and (run.meta or {}).get("cache_hydration") == "outputs-all"
            and isinstance(recorded_dir, str)
        ):
            copy = Path(self.paths.resolve_uri(recorded_dir)) / artifact.uri.rsplit("/", 1)[-1]
            if copy.exists():
                return copy
        return Path(self.paths.resolve_uri(artifact.uri))

    def _link_direction(self, artifact: Artifact, run: Run) -> str | None:
        """``"output"``/``"input"`` if ``run`` logged ``artifact`` (outputs win), else None."""
        links: list[str] = []
        if self.store is not None:
            links = [d for a, d in self.store.get_run_artifacts(run.id) if a.id == artifact.id]
        if not links:  # journal-only tracker, or a run the store does not hold
            record = self.journal.read(run.id)
            if record is not None:
                links += ["output" for a in record.outputs if a.id == artifact.id]
                links += ["input" for a in record.inputs if a.id == artifact.id]
        if "output" in links:
            return "output"
        return "input" if links else None

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


def _check_tags_metadata(tags: Any, metadata: Any) -> None:
    if tags is not None and isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings: use tags=[{tags!r}]")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError("metadata must be a dict of exact-match values")


def _latest_rank(run: Run) -> tuple[Any, ...]:
    """Sort key of "latest": highest iteration (runs without one last), then newest."""
    return (run.iteration is not None, run.iteration or 0, run.created_at, run.id)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) in (32, 36):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


HISTORY_COLUMNS = (
    "id",
    "model_name",
    "status",
    "year",
    "iteration",
    "stage",
    "phase",
    "tags",
    "parent_run_id",
    "created_at",
    "ended_at",
    "cache_hit",
    "signature",
)


def _adapter_name(adapter: Any) -> str | None:
    if adapter is None or isinstance(adapter, str):
        return adapter
    return getattr(adapter, "name", None) or type(adapter).__name__


def _moment(value: datetime | str | None, param: str) -> datetime | None:
    """``value`` as an aware datetime (naive values are local time)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{param}={value!r} is not an ISO 8601 date or time; use e.g. '2026-12-04' "
                "or '2026-12-04T18:00'"
            ) from None
    if not isinstance(value, datetime):
        raise TypeError(f"{param} must be a datetime or an ISO 8601 string, got {value!r}")
    return value if value.tzinfo is not None else value.astimezone()

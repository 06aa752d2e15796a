"""Recording and exporting artifacts' schema profiles.

:class:`SchemaService` profiles a logged artifact's file (or reuses the
profile of the same content), profiles ingested rows, records user-provided
SQLModel schemas, and renders a stored profile as a SQLModel stub. Profiles
are built by :mod:`consist.core.hot.schema_profile` and stored by
:class:`~consist.core.store.schema_store.SchemaStore`.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.hot.schema_models import is_sqlmodel_class, profile_sqlmodel
from consist.core.hot.schema_profile import profile_file as _default_profile_file
from consist.core.hot.schema_stub import class_name_for, render_sqlmodel_stub
from consist.core.store.schema_fields import (
    PROFILE_DRIVERS,
    SCHEMA_SOURCES,
    ProfileObservation,
    SchemaProfile,
)
from consist.core.store.schema_store import SchemaLink, SchemaStore

if TYPE_CHECKING:  # pragma: no cover
    from consist.models.artifact import Artifact

FileProfiler = Callable[..., ProfileObservation]


class SchemaService:
    """Profiles, records and exports artifacts' schemas.

    Parameters
    ----------
    store:
        The schema store, or None without a database (files are still
        profiled, nothing is recorded).
    local_path:
        Resolves an artifact's URI to a local absolute path (None if impossible).
    registered_schemas:
        Registered SQLModel classes by class name (``Tracker(schemas=[...])``).
    profile_file:
        Profiles a file (:func:`consist.core.hot.schema_profile.profile_file`).
    """

    def __init__(
        self,
        store: SchemaStore | None,
        *,
        local_path: Callable[[Artifact], str | None],
        registered_schemas: Mapping[str, type],
        profile_file: FileProfiler = _default_profile_file,
    ) -> None:
        self.store = store
        self.local_path = local_path
        self.registered_schemas = registered_schemas
        self.profile_file = profile_file

    # -- profiling ----------------------------------------------------------------

    def profile_logged_artifact(
        self,
        artifact: Artifact,
        mode: bool | str,
        sample_rows: int | None = None,
        *,
        schema: type | None = None,
    ) -> str | None:
        """Profile a just-built artifact's file; record it and a user schema.

        Profiling problems warn and never fail the logging. When the file is
        profiled, ``artifact.meta["schema_id"]`` and
        ``artifact.meta["schema_summary"]`` are set.

        Parameters
        ----------
        artifact:
            The artifact (not yet flushed to the store).
        mode:
            False (no file profile), True (always profile) or
            ``"if_changed"`` (reuse the ``"file"`` profile of the same
            content, by ``content_id`` else hash, without reading the file).
        sample_rows:
            Rows sampled from csv/json files (None: the default).
        schema:
            A SQLModel class to record as the ``"user_provided"`` schema.

        Returns
        -------
        str or None
            The file schema id (None when not profiled).
        """
        store = self.store
        observations: list[tuple[ProfileObservation, Any]] = []
        if schema is not None and store is not None:
            observations.append((profile_sqlmodel(schema), artifact.id))
        schema_id = None
        if mode:
            obs = self._observe_file(artifact, mode, sample_rows)
            if obs is not None:
                observations.append((obs, artifact.id))
                schema_id = obs.profile.id
                artifact.meta["schema_id"] = schema_id
                artifact.meta["schema_summary"] = obs.summary()
        if store is not None and observations:
            try:
                store.record(observations, content_id=artifact.content_id, hash=artifact.hash)
            except Exception as exc:
                warnings.warn(
                    f"could not store the schema profile of {artifact.key!r}: {exc}",
                    UserWarning,
                    stacklevel=4,
                )
        return schema_id

    def _observe_file(
        self, artifact: Artifact, mode: bool | str, sample_rows: int | None
    ) -> ProfileObservation | None:
        if (
            artifact.driver not in PROFILE_DRIVERS
            or artifact.table_path is not None
            or artifact.array_path is not None
        ):
            warnings.warn(
                f"profile_file_schema: {artifact.key!r} is a {artifact.driver!r} artifact; "
                f"file schemas are profiled for {', '.join(PROFILE_DRIVERS)} files only",
                UserWarning,
                stacklevel=5,
            )
            return None
        if mode == "if_changed" and self.store is not None:
            link = self.store.find_file_link(artifact.content_id, artifact.hash)
            if link is not None:
                profile = self.store.get_profile(link.schema_id)
                if profile is not None:
                    return _observation(link, profile, "file")
        path = artifact.abs_path or self.local_path(artifact)
        try:
            if path is None:
                raise FileNotFoundError(f"{artifact.uri} cannot be resolved to a local file")
            return self.profile_file(path, artifact.driver, sample_rows=sample_rows)
        except Exception as exc:
            warnings.warn(
                f"could not profile the schema of {artifact.key!r} ({artifact.uri}): {exc}",
                UserWarning,
                stacklevel=5,
            )
            return None

    def profile_ingested_table(
        self, artifact: Artifact, table: str, *, schema: type | None = None
    ) -> dict[str, Any]:
        """Profile the ingested rows of ``artifact`` in ``table`` (``"duckdb"`` source).

        Types come from the catalog, statistics from the artifact's rows; a
        SQLModel ``schema`` used for the ingest is recorded too
        (``"user_provided"``).

        Parameters
        ----------
        artifact:
            The ingested artifact.
        table:
            A table of ``global_tables``, or ``"schema.table"``.
        schema:
            The SQLModel class the rows were validated against, if any.

        Returns
        -------
        dict
            ``{"schema_id": ..., "schema_summary": {...}}`` for the caller to
            merge into ``artifact.meta`` and persist.

        Raises
        ------
        RuntimeError
            Without a database.
        KeyError
            If the table does not exist.
        """
        store = self.store
        if store is None:
            raise RuntimeError("profiling an ingested table needs a database")
        db_schema, _, name = table.rpartition(".")
        obs = store.profile_table(db_schema or "global_tables", name, artifact_id=str(artifact.id))
        observations: list[tuple[ProfileObservation, Any]] = [(obs, artifact.id)]
        if is_sqlmodel_class(schema):
            observations.append((profile_sqlmodel(schema), artifact.id))
        store.record(observations, content_id=artifact.content_id, hash=artifact.hash)
        return {"schema_id": obs.profile.id, "schema_summary": obs.summary()}

    # -- export -------------------------------------------------------------------

    def export_sqlmodel(
        self,
        *,
        schema_id: str | None = None,
        artifact_id: str | uuid.UUID | None = None,
        out_path: str | os.PathLike[str] | None = None,
        table_name: str | None = None,
        class_name: str | None = None,
        abstract: bool = True,
        include_system_cols: bool = False,
        include_stats_comments: bool = True,
        prefer_source: str | None = None,
    ) -> str:
        """Render a stored schema as a SQLModel stub (see ``Tracker.export_schema_sqlmodel``).

        Parameters
        ----------
        schema_id, artifact_id, out_path, table_name, class_name, abstract, \
include_system_cols, include_stats_comments, prefer_source:
            As in ``Tracker.export_schema_sqlmodel``.

        Returns
        -------
        str
            The rendered SQLModel stub source.

        Raises
        ------
        ValueError
            Without a database, or for an invalid selector.
        KeyError
            If no schema is stored for the schema id or the artifact.
        """
        store = self.store
        if store is None:
            raise ValueError(
                "export_schema_sqlmodel needs a database: create the Tracker with db_path=..."
            )
        if (schema_id is None) == (artifact_id is None):
            raise ValueError("pass exactly one of schema_id=... or artifact_id=...")
        if prefer_source is not None and prefer_source not in SCHEMA_SOURCES:
            raise ValueError(
                f"prefer_source must be one of {SCHEMA_SOURCES} or None, got {prefer_source!r}"
            )
        for param, value in (("table_name", table_name), ("class_name", class_name)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{param} must be a non-empty string, got {value!r}")

        if schema_id is not None:
            if not isinstance(schema_id, str) or not schema_id:
                raise ValueError(f"schema_id must be a non-empty string, got {schema_id!r}")
            obs, default_table = self._stored_schema(store, schema_id)
        else:
            aid = _artifact_uuid(artifact_id)
            obs, default_table = self._artifact_schema(store, aid, prefer_source or "file")
        name = table_name or default_table
        text = render_sqlmodel_stub(
            obs.profile,
            table_name=name,
            class_name=class_name or class_name_for(name),
            abstract=bool(abstract),
            include_system_cols=bool(include_system_cols),
            stats=obs.stats if include_stats_comments else None,
            n_rows=obs.n_rows,
            sampled_rows=obs.sampled_rows,
            source=obs.source,
            schema_id=obs.profile.id,
        )
        if out_path is not None:
            path = Path(out_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return text

    @staticmethod
    def _stored_schema(store: SchemaStore, schema_id: str) -> tuple[ProfileObservation, str]:
        """A stored profile with the observation of its newest link (if any)."""
        profile = store.get_profile(schema_id)
        if profile is None:
            raise KeyError(f"no stored schema with id {schema_id!r}")
        latest = store.latest_link_for_schema(schema_id)
        default_table = "schema_" + schema_id.split(":")[-1][:12]
        if latest is None:
            return ProfileObservation(profile=profile, source="unknown"), default_table
        link, key = latest
        return _observation(link, profile, link.source), key or default_table

    def _artifact_schema(
        self, store: SchemaStore, artifact_id: str, prefer: str
    ) -> tuple[ProfileObservation, str]:
        """The schema to export for an artifact: user-provided first, then ``prefer``."""
        summary = store.artifact_summary(artifact_id)
        key, meta = summary if summary else (None, {})
        links = {link.source: link for link in store.links_for_artifact(artifact_id)}
        default_table = key or f"artifact_{artifact_id[:8]}"
        if "user_provided" not in links:
            schema_cls = self.registered_schemas.get(str(meta.get("schema_name")))
            if schema_cls is not None:
                return profile_sqlmodel(schema_cls), default_table
        order = ["user_provided", prefer] + [s for s in ("file", "duckdb") if s != prefer]
        for source in order:
            link = links.get(source)
            if link is None:
                continue
            profile = store.get_profile(link.schema_id)
            if profile is None:
                continue
            return _observation(link, profile, source), default_table
        meta_id = meta.get("schema_id")
        if isinstance(meta_id, str):
            profile = store.get_profile(meta_id)
            if profile is not None:
                source = (meta.get("schema_summary") or {}).get("source", "file")
                return ProfileObservation(profile=profile, source=source), default_table
        if summary is None:
            raise KeyError(f"no artifact with id {artifact_id!r} in the store")
        raise KeyError(
            f"artifact {artifact_id} ({key!r}) has no stored schema; log it with "
            "profile_file_schema=True or ingest it"
        )


def _observation(link: SchemaLink, profile: SchemaProfile, source: str) -> ProfileObservation:
    """``profile`` with what ``link`` observed (row counts, statistics)."""
    return ProfileObservation(
        profile=profile,
        source=source,
        n_rows=link.n_rows,
        sampled_rows=link.sampled_rows,
        stats=link.stats,
    )


def _artifact_uuid(value: Any) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"artifact_id must be an artifact UUID, got {value!r}") from exc

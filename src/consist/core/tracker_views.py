"""Views and schema methods of the Tracker.

(``view``, ``views``, ``create_view``, ``create_grouped_view``,
``export_schema_sqlmodel``, plus the schema-profiling hooks used by
``log_artifact`` and ``ingest``.) Mixed into
:class:`~consist.core.tracker.Tracker`. The view DDL is built by
:mod:`consist.core.views`, profiles by :mod:`consist.core.schema_profile`,
and their SQL lives in :mod:`consist.core.store.schema_store`.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.schema_profile import (
    PROFILE_DRIVERS,
    SCHEMA_SOURCES,
    ProfileObservation,
    class_name_for,
    duckdb_type_for_annotation,
    is_system_column,
    model_columns,
    profile_file,
    profile_sqlmodel,
    render_sqlmodel_stub,
    validate_profile_mode,
    validate_sample_rows,
)
from consist.core.store.schema_store import RUN_FILTER_COLUMNS, SchemaStore, ViewSource
from consist.core.views import (
    FacetColumn,
    ViewFactory,
    ViewNamespace,
    ViewResult,
    _split_namespace,
    facet_column_name,
    make_view_class,
    parse_predicate,
    type_facet_column,
    validate_policies,
    validate_view_name,
)

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.artifacts import ArtifactBuilder, ArtifactRequest
    from consist.core.lifecycle import RunLifecycle
    from consist.core.store.metadata_store import MetadataStore
    from consist.models.artifact import Artifact


def _is_sqlmodel_class(value: Any) -> bool:
    try:
        from sqlmodel import SQLModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, type) and issubclass(value, SQLModel)


class TrackerViews:
    """Views and schema methods of the Tracker."""

    store: MetadataStore | None
    artifacts: ArtifactBuilder
    lifecycle: RunLifecycle
    registered_schemas: Mapping[str, type]

    # -- plumbing -------------------------------------------------------------

    def _schema_store(self) -> SchemaStore | None:
        if self.store is None:
            return None
        return SchemaStore(self.store.connections, before_read=self.store.flush)

    def _view_factory(self, what: str) -> ViewFactory:
        store = self._schema_store()
        if store is None:
            raise RuntimeError(
                f"{what} needs a database: create the Tracker with db_path=... to use views"
            )
        hot = getattr(self, "hot_data_store", None)
        ledger = hot.ingested_artifacts if hot is not None else None
        return ViewFactory(store.connections, store, self._source_path, ledger)

    def _source_path(self, source: ViewSource) -> str | None:
        from consist.models.artifact import Artifact

        art = Artifact.model_construct(key=source.key, uri=source.uri, meta={})
        return self.artifacts.local_path(art)

    # -- hybrid views -----------------------------------------------------------

    @property
    def views(self) -> ViewNamespace:
        """The SQLModel view classes created by :meth:`view`, by model class name.

        ``tracker.views.Person`` is the class ``tracker.view(Person)``
        returned. Accessing a schema registered with ``Tracker(schemas=[...])``
        creates its view on first use.
        """
        namespace = self.__dict__.get("_view_namespace")
        if namespace is None:
            namespace = ViewNamespace(self.view, lambda: self.registered_schemas)
            self.__dict__["_view_namespace"] = namespace
        return namespace

    def view(self, model: type, key: str | None = None) -> type:
        """Create/register a hybrid view for a given SQLModel schema.

        The view is named ``v_<key>`` and selects the model's columns plus the
        system columns (``consist_run_id``, ``consist_artifact_id``,
        ``consist_year``, ``consist_iteration``) from every artifact with
        that key: ingested rows from ``global_tables`` and the other
        artifacts' parquet/csv/json files read in place (a column absent from
        a source is NULL there; missing files are left out with a warning).
        Calling it again re-creates the view over the current artifacts.

        Parameters
        ----------
        model : Type[SQLModel]
            SQLModel schema defining the logical columns for the concept.
        key : str, optional
            Override the concept key (defaults to ``model.__tablename__``).

        Returns
        -------
        Type[SQLModel]
            The dynamic SQLModel view class, also exposed as
            ``tracker.views.<ModelName>``; query it with
            ``tracker.run_query(select(ViewCls).where(...))``. Its primary key
            is the model's plus ``consist_artifact_id`` (every model column
            plus ``consist_artifact_id`` when the model declares none).

        Raises
        ------
        RuntimeError
            If the tracker has no database configured.
        TypeError
            If ``model`` is not a SQLModel class.
        ValueError
            If ``key`` is not a non-empty string.
        """
        if not _is_sqlmodel_class(model):
            raise TypeError(f"view() expects a SQLModel class, got {model!r}")
        if key is None:
            key = getattr(model, "__tablename__", None)
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        factory = self._view_factory("view")
        view_name = f"v_{key}"
        columns = [
            (name, duckdb_type_for_annotation(annotation))
            for name, annotation, _, _ in model_columns(model)
        ]
        factory.create_hybrid_view(view_name, key, columns=columns)
        cls = make_view_class(model, view_name)
        self.views._register(model.__name__, cls)
        return cls

    def create_view(self, view_name: str, concept_key: str) -> ViewResult:
        """Create a named hybrid view over a registered concept.

        This is a lower-level helper than :meth:`view`. It is useful when you
        want to create multiple named views over the same concept key, or when
        you want explicit control over the view name. Every column of every
        source is kept (``UNION ALL BY NAME``), plus the system columns; an
        existing view of that name is replaced, and missing files are left
        out with a warning.

        Parameters
        ----------
        view_name : str
            The SQL view name to create in the database (e.g., ``"v_persons"``).
        concept_key : str
            The registered concept key to materialize (typically a
            table/artifact key).

        Returns
        -------
        ViewResult
            Result of ``ViewFactory.create_hybrid_view``: the view's name and
            SQL, how many artifacts are hot/cold, missing and skipped files,
            and its columns.

        Raises
        ------
        RuntimeError
            If no database is configured.
        ValueError
            If ``view_name`` or ``concept_key`` is invalid, or names a table.
        """
        factory = self._view_factory("create_view")
        validate_view_name(view_name)
        if not isinstance(concept_key, str) or not concept_key.strip():
            raise ValueError(f"concept_key must be a non-empty string, got {concept_key!r}")
        return factory.create_hybrid_view(view_name, concept_key)

    def create_grouped_view(
        self,
        view_name: str,
        *,
        schema_id: str | None = None,
        schema: type | None = None,
        namespace: str | None = None,
        params: Iterable[str] | None = None,
        drivers: list[str] | None = None,
        attach_facets: list[str] | None = None,
        include_system_columns: bool = True,
        mode: str = "hybrid",
        if_exists: str = "replace",
        missing_files: str = "warn",
        run_id: str | None = None,
        parent_run_id: str | None = None,
        model: str | None = None,
        status: str | None = None,
        year: int | None = None,
        iteration: int | None = None,
        schema_compatible: bool = False,
    ) -> ViewResult:
        """Create one analysis view across many artifacts selected by schema/facets.

        Unlike ``create_view(view_name, concept_key)``, which targets one key,
        this method selects artifacts by ``schema_id`` plus optional
        facet/run filters and materializes a single view over hot and/or
        cold data. Every argument is validated before anything is created.

        Parameters
        ----------
        view_name : str
            Name of the SQL view to create.
        schema_id : str, optional
            Schema identity used as the primary artifact selector (a stored
            profile id, see ``profile_file_schema`` and
            ``export_schema_sqlmodel``). Pass exactly one of ``schema_id`` and
            ``schema``.
        schema : Type[SQLModel], optional
            SQLModel class selector convenience. When provided, Consist
            resolves matching stored schema ids from this model definition,
            first by exact field names and then (when none match exactly) by
            compatible subset/superset field-name matching.
        namespace : str, optional
            Default ArtifactKV namespace applied to facet predicates (and
            ``attach_facets`` paths) that do not include an explicit namespace.
        params : list of str, optional
            Facet predicate expressions, each in one of: ``<key>=<value>``,
            ``<key>>=<value>``, ``<key><=<value>``. A leading namespace is
            supported, for example ``beam.phys_sim_iteration=2`` (recognised
            when ``beam`` is a namespace of the artifact facet index).
            Values are typed (numbers, ``true``/``false``, ``null``; quote a
            value to force a string); ``>=``/``<=`` need numbers. Only
            indexed artifact facets (``facet_index=True``) can match.
        drivers : list of str, optional
            Optional artifact-driver filter, e.g. ``["parquet"]``.
        attach_facets : list of str, optional
            Facet key paths to project into the view as typed
            ``facet_<key>`` columns (BIGINT/DOUBLE, BOOLEAN or VARCHAR;
            non-word characters of the key become ``_``).
        include_system_columns : bool, default True
            Whether to include Consist system columns in the view.
        mode : {"hybrid", "hot_only", "cold_only"}, default "hybrid"
            Which storage tier(s) to include in the view: ingested rows
            (hot), files of artifacts not ingested (cold), or both.
        if_exists : {"replace", "error"}, default "replace"
            Behavior when ``view_name`` already exists.
        missing_files : {"warn", "error", "skip_silent"}, default "warn"
            Behavior when a selected cold file is missing (``"error"`` raises
            FileNotFoundError before the view is created).
        run_id, parent_run_id, model, status : str, optional
            Run filters (exact matches), applied to a run that created the
            artifact or logged it as an output.
        year, iteration : int, optional
            Run year / iteration filters.
        schema_compatible : bool, default False
            If True, allow schema-compatible subset/superset variants by
            field names in addition to exact ``schema_id`` matches.

        Returns
        -------
        ViewResult
            Result of ``ViewFactory.create_grouped_hybrid_view`` (name, SQL,
            hot/cold artifact counts, missing and skipped files, columns).

        Raises
        ------
        RuntimeError
            If no database is configured.
        ValueError
            If selector or facet predicates are invalid (including a schema
            id or model that matches no stored schema), or view policies are
            invalid.
        FileNotFoundError
            With ``missing_files="error"`` when a selected file is missing.

        Examples
        --------
        >>> tracker.create_grouped_view(
        ...     "v_linkstats_all",
        ...     schema_id="blake3:abc123...",
        ...     namespace="beam",
        ...     params=["artifact_family=linkstats", "year=2018"],
        ...     attach_facets=["artifact_family", "phys_sim_iteration"],
        ...     drivers=["parquet"],
        ...     mode="hybrid",
        ... )
        """
        factory = self._view_factory("create_grouped_view")
        store = factory.schemas
        validate_view_name(view_name)
        validate_policies(mode, if_exists, missing_files)
        if not isinstance(include_system_columns, bool):
            raise ValueError("include_system_columns must be True or False")
        if not isinstance(schema_compatible, bool):
            raise ValueError("schema_compatible must be True or False")
        if (schema_id is None) == (schema is None):
            raise ValueError(
                "pass exactly one of schema_id='blake3:...' or schema=MyModel to select artifacts"
            )
        if schema_id is not None and (not isinstance(schema_id, str) or not schema_id):
            raise ValueError(f"schema_id must be a non-empty string, got {schema_id!r}")
        if schema is not None and not _is_sqlmodel_class(schema):
            raise ValueError(f"schema must be a SQLModel class, got {schema!r}")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        param_list = _string_list(params, "params", example="['artifact_family=linkstats']")
        driver_list = _string_list(drivers, "drivers", example="['parquet']")
        attach_list = _string_list(attach_facets, "attach_facets", example="['scenario']")
        if driver_list:
            from consist.core.drivers.registry import KNOWN_DRIVERS

            unknown = sorted(set(driver_list) - KNOWN_DRIVERS)
            if unknown:
                raise ValueError(
                    f"drivers has unknown names {unknown}; use {sorted(KNOWN_DRIVERS)}"
                )
        run_filters = _run_filters(
            run_id=run_id,
            parent_run_id=parent_run_id,
            model=model,
            status=status,
            year=year,
            iteration=iteration,
        )
        known_namespaces = store.kv_namespaces() if (param_list or attach_list) else set()
        predicates = [parse_predicate(p, namespace, known_namespaces) for p in param_list or []]
        attach: list[FacetColumn] = []
        for path in attach_list or []:
            if not path.strip():
                raise ValueError("attach_facets entries must be non-empty facet keys")
            ns, key = _split_namespace(path.strip(), namespace, known_namespaces)
            column = facet_column_name(key)
            if any(c.column == column for c in attach):
                raise ValueError(f"attach_facets maps two keys to the column {column!r}")
            attach.append(FacetColumn(column=column, namespace=ns, key=key))
        schema_ids = _resolve_schema_ids(store, schema_id, schema, schema_compatible)

        sources = store.select_sources(
            schema_ids=schema_ids,
            drivers=driver_list,
            predicates=predicates,
            run_filters=run_filters,
        )
        if attach:
            typed = store.facet_values(
                [s.artifact_id for s in sources], [(c.namespace, c.key) for c in attach]
            )
            for column in attach:
                type_facet_column(column, typed[(column.namespace, column.key)])
        return factory.create_grouped_hybrid_view(
            view_name,
            sources,
            attach=attach,
            include_system_columns=include_system_columns,
            mode=mode,
            if_exists=if_exists,
            missing_files=missing_files,
        )

    # -- schema export ------------------------------------------------------------

    def export_schema_sqlmodel(
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
        """Export a captured artifact schema as a SQLModel stub for manual editing.

        Exactly one of ``schema_id`` or ``artifact_id`` must be provided. The
        generated Python source is returned and can optionally be written to
        ``out_path``.

        Parameters
        ----------
        schema_id : str, optional
            Schema identifier to export (from the schema registry). If
            provided, ``prefer_source`` is ignored and this specific schema is
            used.
        artifact_id : str or UUID, optional
            Artifact ID to export the associated schema. When used, the
            schema selection respects the ``prefer_source`` parameter.
        out_path : Path, optional
            If provided, write the stub to this path (parents are created)
            and return its contents.
        table_name : str, optional
            Override the SQL table name in the generated class (default: the
            artifact's key).
        class_name : str, optional
            Override the Python class name in the generated class (default:
            CamelCase of the table name).
        abstract : bool, default True
            Whether to mark the generated class as abstract: a plain
            ``SQLModel`` class (no table) to subclass with ``table=True`` or
            to register as a schema. ``False`` renders a mapped
            ``table=True`` class whose primary key is the declared one, else
            ``id``, ``<table>_id``, the first ``*_id`` column or the first
            column (marked ``TODO: review``).
        include_system_cols : bool, default False
            Whether to include Consist system columns in the stub.
        include_stats_comments : bool, default True
            Whether to include column-level stats (nulls, min, max) as
            comments.
        prefer_source : {"file", "duckdb", "user_provided"}, optional
            Preference hint for when a user_provided schema does not exist.
            This is useful when an artifact has both a file profile (pandas
            dtypes) and a duckdb profile (post-ingestion types). Ignored if
            ``schema_id`` is provided directly. User-provided schemas (the
            SQLModel class given with ``schema=`` when logging or ingesting)
            are ALWAYS preferred if they exist. ``None`` (default) prefers
            ``"file"``, as it preserves richer type information (e.g. pandas
            ``category``); a missing preferred source falls back to the
            other one.

        Returns
        -------
        str
            The rendered SQLModel stub source.

        Raises
        ------
        ValueError
            If the tracker has no database configured or if the selector is
            invalid (none or both given, a malformed artifact id, an unknown
            ``prefer_source``).
        KeyError
            If no schema is stored for the schema id or the artifact.
        """
        store = self._schema_store()
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
            profile = store.get_profile(schema_id)
            if profile is None:
                raise KeyError(f"no stored schema with id {schema_id!r}")
            latest = store.latest_link_for_schema(schema_id)
            link, key = latest if latest else (None, None)
            source = link.source if link else "unknown"
            obs = ProfileObservation(
                profile=profile,
                source=source,
                n_rows=link.n_rows if link else None,
                sampled_rows=link.sampled_rows if link else None,
                stats=link.stats if link else {},
            )
            default_table = key or "schema_" + schema_id.split(":")[-1][:12]
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
            return (
                ProfileObservation(
                    profile=profile,
                    source=source,
                    n_rows=link.n_rows,
                    sampled_rows=link.sampled_rows,
                    stats=link.stats,
                ),
                default_table,
            )
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

    # -- schema profiling hooks -------------------------------------------------------

    def _log_profiled(
        self,
        request: ArtifactRequest,
        profile_file_schema: Any = None,
        file_schema_sample_rows: Any = None,
        schema: type | None = None,
    ) -> Artifact:
        """Log one artifact request, then profile/record its schema as asked.

        Used by ``log_artifact``. Arguments are validated before anything is
        written. When profiling (or a ``schema=`` class) applies, the artifact
        is built, its schema recorded and ``meta["schema_id"]`` /
        ``meta["schema_summary"]`` set, and only then is the run flushed, so
        the journal and the artifact row carry them.
        """
        mode = validate_profile_mode(profile_file_schema)
        sample_rows = validate_sample_rows(file_schema_sample_rows)
        user_schema = schema if _is_sqlmodel_class(schema) and self.store is not None else None
        if not mode and user_schema is None:
            return self.lifecycle.log_artifacts([request], "log_artifact")[0]
        art = self.lifecycle.log_artifacts([request], "log_artifact", flush=False)[0]
        try:
            self._profile_logged_artifact(art, mode, sample_rows, schema=user_schema)
        finally:
            self.lifecycle.flush()
        return art

    def _profile_logged_artifact(
        self,
        artifact: Artifact,
        mode: bool | str,
        sample_rows: int | None = None,
        *,
        schema: type | None = None,
    ) -> str | None:
        """Profile a just-built artifact's file; record it and a user schema.

        ``mode`` is True (always profile) or ``"if_changed"`` (reuse the
        ``"file"`` profile of the same content: ``content_id``, else hash,
        without reading the file). Profiling problems warn and never fail
        the logging. Returns the file schema id (None when not profiled).
        """
        store = self._schema_store()
        observations: list[tuple[ProfileObservation, Any]] = []
        if schema is not None and store is not None:
            observations.append((profile_sqlmodel(schema), artifact.id))
        schema_id = None
        if mode:
            obs = self._observe_file(store, artifact, mode, sample_rows)
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
        self,
        store: SchemaStore | None,
        artifact: Artifact,
        mode: bool | str,
        sample_rows: int | None,
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
        if mode == "if_changed" and store is not None:
            link = store.find_file_link(artifact.content_id, artifact.hash)
            if link is not None:
                profile = store.get_profile(link.schema_id)
                if profile is not None:
                    return ProfileObservation(
                        profile=profile,
                        source="file",
                        n_rows=link.n_rows,
                        sampled_rows=link.sampled_rows,
                        stats=link.stats,
                    )
        path = artifact.abs_path or self.artifacts.local_path(artifact)
        try:
            if path is None:
                raise FileNotFoundError(f"{artifact.uri} cannot be resolved to a local file")
            return profile_file(path, artifact.driver, sample_rows=sample_rows)
        except Exception as exc:
            warnings.warn(
                f"could not profile the schema of {artifact.key!r} ({artifact.uri}): {exc}",
                UserWarning,
                stacklevel=5,
            )
            return None

    def _profile_ingested_table(
        self, artifact: Artifact, table: str, *, schema: type | None = None
    ) -> dict[str, Any]:
        """Profile the ingested rows of ``artifact`` in ``table`` (``"duckdb"`` source).

        Called by ``ingest(..., profile_schema=True)`` after the ingest
        transaction has committed. ``table`` is a table of ``global_tables``
        (or ``"schema.table"``). Types come from the catalog, statistics from
        the artifact's rows; a SQLModel ``schema`` used for the ingest is
        recorded too (``"user_provided"``).

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
        store = self._schema_store()
        if store is None:
            raise RuntimeError("profiling an ingested table needs a database")
        db_schema, _, name = table.rpartition(".")
        obs = store.profile_table(db_schema or "global_tables", name, artifact_id=str(artifact.id))
        observations: list[tuple[ProfileObservation, Any]] = [(obs, artifact.id)]
        if _is_sqlmodel_class(schema):
            observations.append((profile_sqlmodel(schema), artifact.id))
        store.record(observations, content_id=artifact.content_id, hash=artifact.hash)
        return {"schema_id": obs.profile.id, "schema_summary": obs.summary()}


# --------------------------------------------------------------------------- #
# Argument helpers
# --------------------------------------------------------------------------- #
def _string_list(value: Any, param: str, *, example: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{param} must be a list of strings, e.g. {param}={example}")
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise ValueError(f"{param} must contain strings, got {item!r}")
    return out


def _run_filters(**filters: Any) -> dict[str, Any]:
    out = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in ("year", "iteration"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        elif not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        assert name in RUN_FILTER_COLUMNS
        out[name] = value
    return out


def _data_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n for n in names if not is_system_column(n))


def _resolve_schema_ids(
    store: SchemaStore, schema_id: str | None, schema: type | None, compatible: bool
) -> list[str]:
    """Stored schema ids selected by ``schema_id`` or a SQLModel ``schema``.

    Raises
    ------
    ValueError
        If nothing stored matches.
    """
    profiles = {sid: _data_names(names) for sid, names in store.profile_field_names().items()}
    if schema_id is not None:
        if schema_id not in profiles:
            raise ValueError(f"schema_id {schema_id!r} matches no stored schema")
        wanted = profiles[schema_id]
        exact = [schema_id]
    else:
        assert schema is not None
        wanted = _data_names(name for name, _, _, _ in model_columns(schema))
        exact = [sid for sid, names in profiles.items() if names == wanted]
    related = [
        sid
        for sid, names in profiles.items()
        if sid not in exact and names and wanted and (names < wanted or names > wanted)
    ]
    if schema_id is not None:
        selected = exact + related if compatible else exact
    else:
        selected = exact + related if compatible or not exact else exact
    if not selected:
        name = getattr(schema, "__name__", schema)
        raise ValueError(
            f"schema {name} matches no stored schema by field names "
            f"({', '.join(sorted(wanted))}); profile the files first (profile_file_schema=True)"
        )
    return selected


def _artifact_uuid(value: Any) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"artifact_id must be an artifact UUID, got {value!r}") from exc

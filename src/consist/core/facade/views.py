"""Views and schema methods of the Tracker.

(``view``, ``views``, ``create_view``, ``create_grouped_view``,
``export_schema_sqlmodel``, plus the schema-profiling hooks used by
``log_artifact`` and ``ingest``.) Mixed into
:class:`~consist.core.tracker.Tracker` as a thin facade: views are built by
:class:`~consist.core.hot.views.ViewFactory` (grouped-view selectors by
:mod:`consist.core.hot.view_selection`), schemas are profiled, recorded and
exported by :class:`~consist.core.hot.schema_service.SchemaService`; their SQL
lives in :mod:`consist.core.store.view_store` and
:mod:`consist.core.store.schema_store`.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from consist.core.hot.schema_models import (
    duckdb_type_for_annotation,
    is_sqlmodel_class,
    model_columns,
)
from consist.core.hot.schema_profile import profile_file
from consist.core.hot.schema_service import SchemaService
from consist.core.hot.view_selection import select_grouped
from consist.core.hot.views import (
    ViewFactory,
    ViewNamespace,
    ViewResult,
    make_view_class,
    validate_policies,
    validate_view_name,
)
from consist.core.store.engines import on_postgres
from consist.core.store.hot_tables import schema_table_key
from consist.core.store.schema_fields import validate_profile_mode, validate_sample_rows
from consist.core.store.schema_store import SchemaStore, ViewSource
from consist.core.store.view_store import ViewStore

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.run.artifacts import ArtifactBuilder, ArtifactRequest
    from consist.core.run.lifecycle import RunLifecycle
    from consist.core.store.metadata_store import MetadataStore
    from consist.models.artifact import Artifact


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
        kind: type[SchemaStore] = SchemaStore
        if on_postgres(self.store):  # ingested tables are profiled from the server's catalog
            from consist.core.store.engines.pg_hot import PgSchemaStore

            kind = PgSchemaStore
        return kind(self.store.connections, before_read=self.store.flush)

    def _schema_service(self) -> SchemaService:
        return SchemaService(
            self._schema_store(),
            local_path=self.artifacts.local_path,
            registered_schemas=self.registered_schemas,
            profile_file=profile_file,
        )

    def _view_factory(self, what: str) -> ViewFactory:
        store = self._schema_store()
        if store is None:
            raise RuntimeError(
                f"{what} needs a database: create the Tracker with db_path=... to use views"
            )
        hot = getattr(self, "hot_data_store", None)
        ledger = hot.ingested_artifacts if hot is not None else None
        if on_postgres(self.store):
            from consist.core.store.engines.pg_views import PgViewStore

            return _ServerViewFactory(
                PgViewStore(store.connections), store, self._source_path, ledger
            )
        return ViewFactory(ViewStore(store.connections), store, self._source_path, ledger)

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
        that key or logged with this schema (``log_artifact(...,
        schema=Model)``): ingested rows from ``global_tables`` (an ingest
        validated against ``Model`` writes into the key's table) and the
        other artifacts' parquet/csv/json files read in place (a column
        absent from a source is NULL there; missing files are left out with
        a warning).
        Calling it again re-creates the view over the current artifacts.

        On a PostgreSQL store (``db_url``) the view is a view of the server
        over its ``global_tables``: it covers ingested artifacts only (the
        server cannot read the client's files); the others are left out
        with a warning naming them (``tracker.ingest(artifact)`` adds them).

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
        if not is_sqlmodel_class(model):
            raise TypeError(f"view() expects a SQLModel class, got {model!r}")
        if key is None:
            key = schema_table_key(model)
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        factory = self._view_factory("view")
        view_name = f"v_{key}"
        columns = [
            (name, duckdb_type_for_annotation(annotation))
            for name, annotation, _, _ in model_columns(model)
        ]
        factory.create_hybrid_view(view_name, key, columns=columns, schema_name=model.__name__)
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
        out with a warning. On a PostgreSQL store (``db_url``) the view
        covers ingested artifacts only, as :meth:`view` says; the others are
        listed in ``ViewResult.skipped``.

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
            Artifact facets are indexed under the model name of the run that
            produced the artifact (``namespace="beam"`` for the outputs of
            ``beam`` runs). None: any namespace.
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
            (hot), files of artifacts not ingested (cold), or both. On a
            PostgreSQL store (``db_url``) views read ingested rows only:
            ``"hybrid"`` leaves the artifacts not ingested out (listed in
            ``ViewResult.skipped``; ``missing_files`` says whether with a
            warning naming them, silently, or by raising ValueError), and
            ``"cold_only"`` is refused.
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
            A selection that matches nothing still creates the view, with
            the schema's columns (the model's fields, or the stored profile
            of ``schema_id``) plus the system columns, and zero rows.

        Raises
        ------
        RuntimeError
            If no database is configured.
        ValueError
            If selector or facet predicates are invalid (including a schema
            id or model that matches no stored schema), or view policies are
            invalid, or ``mode="cold_only"`` on a PostgreSQL store, or (there)
            ``missing_files="error"`` when selected artifacts were not ingested.
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
        validate_view_name(view_name)
        validate_policies(mode, if_exists, missing_files)
        if mode == "cold_only" and isinstance(factory, _ServerViewFactory):
            raise ValueError(
                "mode='cold_only' reads artifacts' files in place, which a PostgreSQL store "
                "(db_url) cannot: its views cover ingested rows only; ingest the artifacts "
                "(tracker.ingest(artifact)) and use mode='hybrid' or 'hot_only'"
            )
        if not isinstance(include_system_columns, bool):
            raise ValueError("include_system_columns must be True or False")
        selection = select_grouped(
            factory.schemas,
            schema_id=schema_id,
            schema=schema,
            namespace=namespace,
            params=params,
            drivers=drivers,
            attach_facets=attach_facets,
            run_filters={
                "run_id": run_id,
                "parent_run_id": parent_run_id,
                "model": model,
                "status": status,
                "year": year,
                "iteration": iteration,
            },
            schema_compatible=schema_compatible,
        )
        return factory.create_grouped_hybrid_view(
            view_name,
            selection.sources,
            attach=selection.attach,
            empty_columns=selection.schema_columns,
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
        return self._schema_service().export_sqlmodel(
            schema_id=schema_id,
            artifact_id=artifact_id,
            out_path=out_path,
            table_name=table_name,
            class_name=class_name,
            abstract=abstract,
            include_system_cols=include_system_cols,
            include_stats_comments=include_stats_comments,
            prefer_source=prefer_source,
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
        user_schema = schema if is_sqlmodel_class(schema) and self.store is not None else None
        if not mode and user_schema is None:
            return self.lifecycle.log_artifacts([request], "log_artifact")[0]
        art = self.lifecycle.log_artifacts([request], "log_artifact", flush=False)[0]
        try:
            self._schema_service().profile_logged_artifact(
                art, mode, sample_rows, schema=user_schema
            )
        finally:
            self.lifecycle.flush()
        return art

    def _profile_ingested_table(
        self, artifact: Artifact, table: str, *, schema: type | None = None
    ) -> dict[str, Any]:
        """Profile the ingested rows of ``artifact`` in ``table`` (``"duckdb"`` source).

        Called by ``ingest(..., profile_schema=True)`` after the ingest
        transaction has committed; see
        :meth:`~consist.core.hot.schema_service.SchemaService.profile_ingested_table`.
        """
        return self._schema_service().profile_ingested_table(artifact, table, schema=schema)


class _ServerViewFactory(ViewFactory):
    """The view factory of a PostgreSQL store: views cover ingested artifacts only.

    The server cannot read the client's files, so a selected artifact that
    was never ingested is left out of the view, listed in
    ``ViewResult.skipped`` and named in a warning that gives the fix
    (``tracker.ingest(artifact)``). ``missing_files`` is the policy for
    them: ``"warn"`` (default) as said, ``"skip_silent"`` without the
    warning, ``"error"`` raises ValueError naming them before anything is
    created. Everything else (selection, filters, columns, policies) is
    :class:`~consist.core.hot.views.ViewFactory`'s.
    """

    def _readable(self, cold: Any, result: ViewResult, missing_files: str) -> list:
        if not cold:
            return []
        uris = [source.uri for source in cold]
        named = [f"{source.key} ({source.uri})" for source in cold]
        which = f"{', '.join(named[:3])}{', ...' if len(named) > 3 else ''}"
        why = (
            "on a PostgreSQL store (db_url) views read ingested rows only; ingest them with "
            "tracker.ingest(artifact) to include them"
        )
        if missing_files == "error":
            raise ValueError(
                f"view {result.name!r}: {len(uris)} selected artifact(s) were not ingested, "
                f"{which}: {why}, or pass missing_files='warn' or 'skip_silent' to leave them out"
            )
        result.skipped.extend(uris)
        if missing_files == "warn":
            warnings.warn(
                f"view {result.name!r}: left out {len(uris)} artifact(s) that were not "
                f"ingested, {which}: {why}",
                UserWarning,
                stacklevel=5,
            )
        return []

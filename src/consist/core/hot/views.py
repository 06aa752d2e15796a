"""Hybrid views: one SQL view over ingested (hot) rows and files read in place (cold).

Conventions shared with ingestion (:mod:`consist.core.store.hot_tables`):

* Ingested rows live in the DuckDB schema ``global_tables``, one table per
  artifact key (:func:`~consist.core.store.hot_tables.table_name_for`), with
  the provenance columns ``consist_run_id VARCHAR``, ``consist_artifact_id
  VARCHAR``, ``consist_year INTEGER`` and ``consist_iteration INTEGER`` (and
  ``consist_ingested_at``). An artifact is *hot* when rows with its id are in
  such a table (the ``ingested_artifact`` ledger says which; a table the
  ledger does not know is scanned), *cold* otherwise.
* A hybrid view is ``UNION ALL BY NAME`` of the hot rows and of the cold
  artifacts' files (parquet/csv/json, read with ``read_parquet`` /
  ``read_csv`` / ``read_json``; one scan per format over all files of the
  view, joined to an inline table that gives each file's rows the same
  provenance columns: the artifact's id and its creator run's id, year and
  iteration). Columns missing in some source are NULL there.
* Loader bookkeeping columns (``_dlt_*``) are never exposed; every
  ``consist_*`` column is a system column (``include_system_columns``).

Naming: :meth:`Tracker.view(Model) <consist.core.facade.views.TrackerViews.view>`
creates ``v_<key>`` (``key`` defaults to ``Model.__tablename__``);
``create_view`` / ``create_grouped_view`` use the name given. Views live in
DuckDB's ``main`` schema, next to the metadata tables (whose names they may
not take).

A view records the artifact selection and the file paths at creation time:
re-create it (``if_exists="replace"``, the default) after new runs, after
ingesting, or after files moved. ``missing_files`` decides what happens to a
selected cold file that no longer exists when the view is created.

This module decides what a view covers (validating arguments, parsing facet
predicates, splitting the selected artifacts into hot and cold, applying
``missing_files``) and maps SQLModel classes onto views. All SQL is in the
store: the view DDL and catalog reads in :mod:`consist.core.store.view_store`,
the metadata queries behind a view (which artifacts, which facet values) in
:mod:`consist.core.store.schema_store`.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consist.core.hot.schema_models import mapped_columns
from consist.core.store.facet_rows import decode_value, dumps_json
from consist.core.store.schema_fields import SYSTEM_COLUMNS
from consist.core.store.schema_store import KVPredicate, SchemaStore, ViewSource
from consist.core.store.sql_text import quote_ident as qi
from consist.core.store.sql_text import quote_literal as ql
from consist.core.store.view_store import (
    COLD_READERS,
    HOT_SCHEMA,
    FacetColumn,
    ViewStore,
)
from consist.core.validation import validate_label

__all__ = [
    "COLD_READERS",
    "HOT_SCHEMA",
    "IF_EXISTS_POLICIES",
    "MISSING_FILES_POLICIES",
    "VIEW_MODES",
    "FacetColumn",
    "ViewFactory",
    "ViewNamespace",
    "ViewResult",
    "facet_column_name",
    "make_view_class",
    "parse_predicate",
    "parse_value",
    "qi",
    "ql",
    "split_namespace",
    "type_facet_column",
    "validate_policies",
    "validate_view_name",
]

VIEW_MODES = ("hybrid", "hot_only", "cold_only")
IF_EXISTS_POLICIES = ("replace", "error")
MISSING_FILES_POLICIES = ("warn", "error", "skip_silent")


# --------------------------------------------------------------------------- #
# Validation and predicates
# --------------------------------------------------------------------------- #
def validate_policies(mode: Any, if_exists: Any, missing_files: Any) -> None:
    """Check the three view policies.

    Raises
    ------
    ValueError
        Naming the parameter and its allowed values.
    """
    for param, value, allowed in (
        ("mode", mode, VIEW_MODES),
        ("if_exists", if_exists, IF_EXISTS_POLICIES),
        ("missing_files", missing_files, MISSING_FILES_POLICIES),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(
                f"{param} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
            )


def validate_view_name(view_name: Any) -> str:
    """A non-empty name of at most 255 characters, without NUL or control characters.

    A view name is a (quoted) SQL identifier and never part of a file path, so
    it may hold any other text (see :func:`~consist.core.validation.validate_label`).

    Raises
    ------
    ValueError
        For anything else.
    """
    if not isinstance(view_name, str) or not view_name.strip():
        raise ValueError(f"view_name must be a non-empty string, got {view_name!r}")
    return validate_label(view_name, param="view_name", max_length=255)


_PREDICATE = re.compile(r"^\s*(?P<lhs>[^<>=!]+?)\s*(?P<op>>=|<=|=)\s*(?P<rhs>.*?)\s*$", re.S)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")


def split_namespace(
    path: str, default_namespace: str | None, known_namespaces: Iterable[str]
) -> tuple[str | None, str]:
    """Split a facet path into its namespace and key.

    Parameters
    ----------
    path:
        ``"key"`` or ``"namespace.key"`` (a backslash escapes a dot of the key).
    default_namespace:
        Namespace of a path without a known namespace prefix.
    known_namespaces:
        Namespaces present in the facet index.

    Returns
    -------
    tuple[str | None, str]
        ``(ns, key)`` when the prefix is a known namespace, else
        ``(default_namespace, path)``.
    """
    match = re.match(r"^((?:[^.\\]|\\.)+)\.(.+)$", path)
    if match and match.group(1) in set(known_namespaces):
        return match.group(1), match.group(2)
    return default_namespace, path


def parse_value(text: str) -> Any:
    """Type a predicate value: quoted -> str, true/false, null, int, float, else str."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if _NUMBER.match(text):
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return float(text)
    return text


def parse_predicate(
    expression: Any, default_namespace: str | None, known_namespaces: Iterable[str]
) -> KVPredicate:
    """Parse ``[namespace.]key=value``, ``key>=number`` or ``key<=number``.

    A leading ``namespace.`` is recognised when it names a namespace present
    in the artifact facet index (``artifact_kv``); otherwise the whole
    left-hand side is the (dotted) key, in ``default_namespace``. Values are
    typed by :func:`parse_value`; quote a value (``k="2018"``) to compare it
    as a string. ``key=2018`` matches the number 2018 and the string
    ``"2018"``.

    Raises
    ------
    ValueError
        For an empty key or value, another operator (``!=``, ``==``, ``<``,
        ``>``), or a non-numeric bound of ``>=`` / ``<=``.
    """
    if not isinstance(expression, str):
        raise ValueError(f"params entries must be strings like 'key=value', got {expression!r}")
    match = _PREDICATE.match(expression)
    if not match or not match.group("rhs") or match.group("rhs")[0] in "<>=!":
        raise ValueError(
            f"invalid facet predicate {expression!r}: use 'key=value', 'key>=number' or "
            "'key<=number' (optionally 'namespace.key=value')"
        )
    lhs, op, rhs = match.group("lhs").strip(), match.group("op"), match.group("rhs")
    namespace, key = split_namespace(lhs, default_namespace, known_namespaces)
    value = parse_value(rhs)
    if op != "=" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"invalid facet predicate {expression!r}: {op} needs a numeric bound")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"invalid facet predicate {expression!r}: the value must be finite")
    return KVPredicate(namespace=namespace, key=key, op=op, value=value, text=rhs)


# --------------------------------------------------------------------------- #
# Facet columns
# --------------------------------------------------------------------------- #
def facet_column_name(key: str) -> str:
    """``"phys_sim_iteration"`` -> ``"facet_phys_sim_iteration"`` (non-word chars -> ``_``)."""
    return "facet_" + re.sub(r"\W", "_", key.replace("\\.", "."))


def type_facet_column(column: FacetColumn, typed: Mapping[str, tuple[Any, ...]]) -> FacetColumn:
    """Fill ``column`` from ``{artifact id: typed KV row}``, choosing its SQL type.

    All numbers -> BIGINT (when all are integers) or DOUBLE; all booleans ->
    BOOLEAN; all strings -> VARCHAR; a mix -> VARCHAR of the JSON text.
    """
    kinds = {row[0] for row in typed.values() if row[0] != "null"}
    values = {aid: decode_value(*row) for aid, row in typed.items()}
    if kinds == {"num"}:
        integral = all(isinstance(v, int) for v in values.values() if v is not None)
        column.sql_type = "BIGINT" if integral else "DOUBLE"
    elif kinds == {"bool"}:
        column.sql_type = "BOOLEAN"
    else:
        column.sql_type = "VARCHAR"
        if kinds - {"str"}:
            values = {
                aid: (None if v is None else v if isinstance(v, str) else dumps_json(v))
                for aid, v in values.items()
            }
    column.values = values
    return column


# --------------------------------------------------------------------------- #
# The factory
# --------------------------------------------------------------------------- #
@dataclass
class ViewResult:
    """What a view creation did.

    Attributes
    ----------
    name:
        The view's name.
    sql:
        The ``SELECT`` behind it.
    hot_artifacts, cold_artifacts:
        Artifacts whose rows come from ``global_tables`` / from files.
    missing_files:
        URIs of selected cold artifacts whose files were missing (left out).
    skipped:
        URIs of cold artifacts that cannot be read in place (not
        parquet/csv/json files; ingest them to include them).
    columns:
        The view's columns, in order.
    """

    name: str
    sql: str
    hot_artifacts: int = 0
    cold_artifacts: int = 0
    missing_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


class ViewFactory:
    """Builds hybrid and grouped views in the store's DuckDB database.

    Parameters
    ----------
    store:
        The :class:`~consist.core.store.view_store.ViewStore` (all view SQL).
    schemas:
        The :class:`SchemaStore` (artifact selection, facet values).
    local_path:
        Resolves a selected artifact's URI to a local absolute path (None
        when it cannot be resolved, e.g. an unknown mount).
    ledger:
        ``{artifact id: table}`` of ingested artifacts (the ingest ledger),
        or None to find hot artifacts by scanning ``global_tables``.
    """

    def __init__(
        self,
        store: ViewStore,
        schemas: SchemaStore,
        local_path: Callable[[ViewSource], str | None],
        ledger: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.store = store
        self.schemas = schemas
        self.local_path = local_path
        self.ledger = ledger

    # -- public ---------------------------------------------------------------

    def create_hybrid_view(
        self,
        view_name: str,
        concept_key: str,
        *,
        columns: Sequence[tuple[str, str]] | None = None,
        schema_name: str | None = None,
        include_system_columns: bool = True,
        mode: str = "hybrid",
        if_exists: str = "replace",
        missing_files: str = "warn",
    ) -> ViewResult:
        """A view over every artifact with key ``concept_key``.

        The key's own hot table (``global_tables.<key>``) contributes all its
        rows; rows of artifacts with this key found in other hot tables are
        included too.

        Parameters
        ----------
        view_name:
            The view to create.
        concept_key:
            The artifact key.
        columns:
            ``(name, DuckDB type)`` to project (a model's columns; absent
            ones are NULL of that type); None keeps every column.
        schema_name:
            Also cover artifacts logged with this schema
            (``meta["schema_name"]``) under another key.
        include_system_columns, mode, if_exists, missing_files:
            As in ``Tracker.create_grouped_view``.

        Returns
        -------
        ViewResult

        Raises
        ------
        ValueError
            For an invalid name or policy, or a name taken by a table (or
            by a view, with ``if_exists="error"``).
        FileNotFoundError
            With ``missing_files="error"`` when a selected file is missing.
        """
        validate_view_name(view_name)
        validate_policies(mode, if_exists, missing_files)
        sources = self.schemas.select_sources(key=concept_key, schema_name=schema_name)
        return self._create(
            view_name,
            sources,
            concept_key=concept_key,
            columns=columns,
            attach=(),
            include_system_columns=include_system_columns,
            mode=mode,
            if_exists=if_exists,
            missing_files=missing_files,
        )

    def create_grouped_hybrid_view(
        self,
        view_name: str,
        sources: Sequence[ViewSource],
        *,
        attach: Sequence[FacetColumn] = (),
        empty_columns: Sequence[tuple[str, str]] | None = None,
        include_system_columns: bool = True,
        mode: str = "hybrid",
        if_exists: str = "replace",
        missing_files: str = "warn",
    ) -> ViewResult:
        """A view over exactly ``sources`` (hot rows filtered by artifact id).

        Parameters
        ----------
        view_name:
            The view to create.
        sources:
            The selected artifacts (``SchemaStore.select_sources``).
        attach:
            Typed facet columns to join (see :func:`type_facet_column`).
        empty_columns:
            ``(name, DuckDB type)`` of the selecting schema: the view's data
            columns when nothing is selected (zero rows, same columns).
        include_system_columns, mode, if_exists, missing_files:
            As in ``Tracker.create_grouped_view``.

        Returns
        -------
        ViewResult

        Raises
        ------
        ValueError
            For an invalid name or policy, or a name taken by a table (or
            by a view, with ``if_exists="error"``).
        FileNotFoundError
            With ``missing_files="error"`` when a selected file is missing.
        """
        validate_view_name(view_name)
        validate_policies(mode, if_exists, missing_files)
        return self._create(
            view_name,
            sources,
            concept_key=None,
            columns=None,
            empty_columns=empty_columns,
            attach=attach,
            include_system_columns=include_system_columns,
            mode=mode,
            if_exists=if_exists,
            missing_files=missing_files,
        )

    # -- building -------------------------------------------------------------

    def _create(
        self,
        view_name: str,
        sources: Sequence[ViewSource],
        *,
        concept_key: str | None,
        columns: Sequence[tuple[str, str]] | None,
        attach: Sequence[FacetColumn],
        empty_columns: Sequence[tuple[str, str]] | None = None,
        include_system_columns: bool,
        mode: str,
        if_exists: str,
        missing_files: str,
    ) -> ViewResult:
        result = ViewResult(name=view_name, sql="")
        with_hot = mode in ("hybrid", "hot_only")
        with self.store.hold():
            self.store.check_view_name(view_name, if_exists)
            ids = [s.artifact_id for s in sources]
            ledger = dict(self.ledger()) if self.ledger is not None else {}
            hot = self.store.locate_hot(ids, ledger, concept_key)
            if with_hot:
                wanted = set(ids)
                result.hot_artifacts = sum(
                    1 for aid, t in hot.hot_of.items() if aid in wanted or t == hot.concept_table
                )
            readable: list[tuple[ViewSource, str]] = []
            if mode in ("hybrid", "cold_only"):
                cold = [s for s in sources if s.artifact_id not in hot.hot_of]
                readable = self._readable(cold, result, missing_files)
                result.cold_artifacts = len({s.artifact_id for s, _ in readable})
            result.sql, result.columns = self.store.create_view(
                view_name,
                hot=hot if with_hot else None,
                ids=ids,
                cold=readable,
                columns=columns,
                attach=attach,
                include_system_columns=include_system_columns,
                empty_columns=empty_columns,
            )
        return result

    def _readable(
        self, cold: Sequence[ViewSource], result: ViewResult, missing_files: str
    ) -> list[tuple[ViewSource, str]]:
        """Cold sources with a local file to read; the missing ones per policy."""
        readable, missing = [], []
        for source in cold:
            if (
                source.driver not in COLD_READERS
                or source.table_path is not None
                or source.array_path is not None
            ):
                result.skipped.append(source.uri)
                continue
            path = self.local_path(source)
            if path is None or not os.path.isfile(path):
                missing.append(source)
                continue
            readable.append((source, os.path.abspath(path)))
        if result.skipped:
            warnings.warn(
                f"view {result.name!r}: {len(result.skipped)} artifact(s) cannot be read in "
                f"place (not parquet/csv/json files), e.g. {result.skipped[0]}; ingest them "
                "to include them",
                UserWarning,
                stacklevel=5,
            )
        if missing:
            uris = [s.uri for s in missing]
            if missing_files == "error":
                raise FileNotFoundError(
                    f"view {result.name!r}: {len(uris)} selected file(s) are missing, e.g. "
                    f"{', '.join(uris[:3])}; pass missing_files='warn' or 'skip_silent' to "
                    "leave them out"
                )
            result.missing_files = uris
            if missing_files == "warn":
                warnings.warn(
                    f"view {result.name!r}: left out {len(uris)} missing file(s), e.g. "
                    f"{', '.join(uris[:3])}",
                    UserWarning,
                    stacklevel=5,
                )
        return readable


# --------------------------------------------------------------------------- #
# SQLModel classes mapped to views
# --------------------------------------------------------------------------- #
def make_view_class(model: type, view_name: str, *, include_system_columns: bool = True) -> type:
    """A SQLModel table class mapped to ``view_name`` with ``model``'s columns.

    The class is built on a private SQLAlchemy registry, so re-creating a view
    never clashes with ``SQLModel.metadata`` or an earlier class. Its primary
    key (needed to map a class; views have none) is the model's primary key
    plus ``consist_artifact_id``, or every model column plus
    ``consist_artifact_id`` when the model declares none.
    """
    from sqlalchemy.orm import registry
    from sqlmodel import Field, SQLModel

    base = type(SQLModel)(
        f"_{model.__name__}ViewBase", (SQLModel,), {"__module__": __name__}, registry=registry()
    )
    columns = mapped_columns(model)
    declared_pk = any(c.primary_key for c in columns)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__tablename__": view_name}
    infos = getattr(model, "model_fields", {})
    for c in columns:
        if c.column in SYSTEM_COLUMNS:
            continue
        is_pk = c.primary_key if declared_pk else True
        kwargs: dict[str, Any] = {"default": None, "primary_key": is_pk}
        sa_type = _sa_type_of(infos.get(c.attr))
        if sa_type is not None:
            kwargs["sa_type"] = sa_type
        if c.attr != c.column:
            kwargs["sa_column_kwargs"] = {"name": c.column}
        annotations[c.attr] = c.annotation
        namespace[c.attr] = Field(**kwargs)
    if include_system_columns:
        for column, kind in SYSTEM_COLUMNS.items():
            annotations[column] = (int if kind == "INTEGER" else str) | None
            namespace[column] = Field(default=None, primary_key=column == "consist_artifact_id")
    namespace["__annotations__"] = annotations
    name = f"{model.__name__}View"
    return type(SQLModel)(name, (base,), namespace, table=True)


def _sa_type_of(info: Any) -> Any:
    """The explicit SQLAlchemy type of a SQLModel field (``sa_type`` / ``sa_column``), if any."""
    if info is None:
        return None
    sa_type = getattr(info, "sa_type", None)
    if sa_type is not None and type(sa_type).__name__ != "UndefinedType":
        return sa_type
    sa_column = getattr(info, "sa_column", None)
    if sa_column is not None and hasattr(sa_column, "type"):
        return sa_column.type
    return None


class ViewNamespace:
    """``tracker.views``: the SQLModel view classes, by model class name.

    ``tracker.views.Person`` is the class returned by ``tracker.view(Person)``.
    A schema registered with ``Tracker(schemas=[...])`` that has no view yet
    gets one on first access.
    """

    def __init__(self, create: Callable[[type], type], schemas: Callable[[], Mapping]) -> None:
        self._create = create
        self._schemas = schemas
        self._classes: dict[str, type] = {}

    def _register(self, name: str, cls: type) -> None:
        self._classes[name] = cls

    def __getattr__(self, name: str) -> type:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._classes:
            return self._classes[name]
        schema = self._schemas().get(name)
        if schema is not None:
            return self._create(schema)
        known = sorted(set(self._classes) | set(self._schemas()))
        raise AttributeError(
            f"no view for {name!r}; create one with tracker.view({name}) "
            f"(available: {', '.join(known) or 'none'})"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._classes))

    def __dir__(self) -> list[str]:
        return sorted(set(self._classes) | set(self._schemas()))

    def __repr__(self) -> str:
        return f"<views: {', '.join(sorted(self._classes)) or 'none'}>"

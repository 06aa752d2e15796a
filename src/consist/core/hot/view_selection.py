"""Which artifacts a grouped view covers: its selectors, validated and resolved.

``Tracker.create_grouped_view`` selects artifacts by stored schema (an id, or
a SQLModel class matched by field names), facet predicates, drivers and run
filters, and may attach facet values as typed columns. This module checks
every selector before anything is created, and turns them into the selected
:class:`~consist.core.store.schema_store.ViewSource` rows and the typed
:class:`~consist.core.store.view_store.FacetColumn` values, asking the
:class:`~consist.core.store.schema_store.SchemaStore` in domain terms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from consist.core.hot.schema_models import (
    duckdb_type_for_annotation,
    is_sqlmodel_class,
    model_columns,
)
from consist.core.hot.views import (
    facet_column_name,
    parse_predicate,
    split_namespace,
    type_facet_column,
)
from consist.core.store.schema_fields import is_system_column
from consist.core.store.schema_store import RUN_FILTER_COLUMNS, SchemaStore, ViewSource
from consist.core.store.view_store import FacetColumn


class GroupedSelection(NamedTuple):
    """What a grouped view covers.

    Attributes
    ----------
    sources:
        The selected artifacts, oldest first.
    attach:
        The typed facet columns.
    schema_columns:
        ``(name, DuckDB type)`` of the selecting schema (the model's fields,
        or the stored profile of ``schema_id``): the view's data columns when
        nothing is selected.
    """

    sources: list[ViewSource]
    attach: list[FacetColumn]
    schema_columns: list[tuple[str, str]]


def select_grouped(
    store: SchemaStore,
    *,
    schema_id: Any = None,
    schema: Any = None,
    namespace: Any = None,
    params: Any = None,
    drivers: Any = None,
    attach_facets: Any = None,
    run_filters: Mapping[str, Any] | None = None,
    schema_compatible: Any = False,
) -> GroupedSelection:
    """Validate the selectors of a grouped view; select its artifacts and facet columns.

    Parameters
    ----------
    store:
        The schema store (stored schemas, facet index, artifact selection).
    schema_id, schema, namespace, params, drivers, attach_facets, schema_compatible:
        As in ``Tracker.create_grouped_view``.
    run_filters:
        ``{run_id, parent_run_id, model, status, year, iteration}`` (None
        values are ignored).

    Returns
    -------
    GroupedSelection
        The selected artifacts (oldest first), the typed facet columns and
        the schema's columns.

    Raises
    ------
    ValueError
        Naming the first invalid selector, or when the schema selector
        matches no stored schema.
    """
    if not isinstance(schema_compatible, bool):
        raise ValueError("schema_compatible must be True or False")
    if (schema_id is None) == (schema is None):
        raise ValueError(
            "pass exactly one of schema_id='blake3:...' or schema=MyModel to select artifacts"
        )
    if schema_id is not None and (not isinstance(schema_id, str) or not schema_id):
        raise ValueError(f"schema_id must be a non-empty string, got {schema_id!r}")
    if schema is not None and not is_sqlmodel_class(schema):
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
            raise ValueError(f"drivers has unknown names {unknown}; use {sorted(KNOWN_DRIVERS)}")
    filters = _run_filters(run_filters or {})
    known_namespaces = store.kv_namespaces() if (param_list or attach_list) else set()
    predicates = [parse_predicate(p, namespace, known_namespaces) for p in param_list or []]
    attach: list[FacetColumn] = []
    for path in attach_list or []:
        if not path.strip():
            raise ValueError("attach_facets entries must be non-empty facet keys")
        ns, key = split_namespace(path.strip(), namespace, known_namespaces)
        column = facet_column_name(key)
        if any(c.column == column for c in attach):
            raise ValueError(f"attach_facets maps two keys to the column {column!r}")
        attach.append(FacetColumn(column=column, namespace=ns, key=key))
    schema_ids = resolve_schema_ids(store, schema_id, schema, schema_compatible)

    sources = store.select_sources(
        schema_ids=schema_ids,
        drivers=driver_list,
        predicates=predicates,
        run_filters=filters,
    )
    if attach:
        typed = store.facet_values(
            [s.artifact_id for s in sources], [(c.namespace, c.key) for c in attach]
        )
        for column in attach:
            type_facet_column(column, typed[(column.namespace, column.key)])
    return GroupedSelection(sources, attach, _schema_columns(store, schema_id, schema))


def _schema_columns(
    store: SchemaStore, schema_id: str | None, schema: type | None
) -> list[tuple[str, str]]:
    """``(name, DuckDB type)`` of the selecting schema, system columns left out."""
    if schema is not None:
        return [
            (name, duckdb_type_for_annotation(annotation))
            for name, annotation, _, _ in model_columns(schema)
            if not is_system_column(name)
        ]
    profile = store.get_profile(schema_id) if schema_id is not None else None
    if profile is None:
        return []
    return [(f.name, f.type) for f in profile.fields if not is_system_column(f.name)]


def resolve_schema_ids(
    store: SchemaStore, schema_id: str | None, schema: type | None, compatible: bool
) -> list[str]:
    """Stored schema ids selected by ``schema_id`` or a SQLModel ``schema``.

    A schema id selects itself; a class selects the stored schemas with
    exactly its field names (system columns aside), or, when none does,
    those whose field names are a subset or superset of its own. With
    ``compatible``, subset/superset matches are always added.

    Parameters
    ----------
    store:
        The schema store.
    schema_id, schema:
        Exactly one of them.
    compatible:
        Add schema-compatible (subset/superset) variants.

    Returns
    -------
    list[str]
        Exact matches first.

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


def _run_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
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

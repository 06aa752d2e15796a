"""Schema profiles: the column layout of a table, deduplicated by digest.

A *schema profile* is the ordered list of a table's fields (name, DuckDB
type, nullability, and for files the pandas dtype recorded in the file). Its
id is a digest of that canonical list, so every artifact with the same layout
shares one stored profile. What was observed in one particular artifact (row
count, per-column null counts, min and max) is kept beside the link between
the artifact and the profile, not in the profile.

Profiles come from three sources:

``"file"``
    A parquet, csv or json file read in place (:func:`profile_file`). Parquet
    types, row counts and statistics come from the file footer (no row is
    read); csv/json types come from DuckDB's sniffer over at most
    ``sample_rows`` rows and statistics from the same sample.
``"duckdb"``
    An ingested table in the store (built by
    :meth:`consist.core.store.schema_store.SchemaStore.profile_table` with
    :func:`profile_from_columns`).
``"user_provided"``
    A SQLModel class given by the user (:func:`profile_sqlmodel`).

Layout of the package: the canonical field list and digest live in
:mod:`consist.core.store.schema_fields`, SQLModel classes as columns in
:mod:`consist.core.hot.schema_models`, the exported SQLModel stub
(:func:`render_sqlmodel_stub`) in :mod:`consist.core.hot.schema_stub`, and the
SQL that reads files and computes statistics (on a private in-memory DuckDB
connection, never the store's) in :mod:`consist.core.store.profile_scan`.
This module profiles files and re-exports the public names of the others.
"""

from __future__ import annotations

import os
from typing import Any

from consist.core.hot.schema_models import (
    duckdb_type_for_annotation,
    model_columns,
    profile_sqlmodel,
)
from consist.core.hot.schema_stub import class_name_for, render_sqlmodel_stub
from consist.core.store.profile_scan import (
    describe_parquet,
    sample_file,
    stats_from_row,
    stats_sql,
)
from consist.core.store.schema_fields import (
    DEFAULT_SAMPLE_ROWS,
    PROFILE_DRIVERS,
    SCHEMA_ID_DOMAIN,
    SCHEMA_SOURCES,
    SYSTEM_COLUMNS,
    ProfileObservation,
    SchemaField,
    SchemaProfile,
    is_system_column,
    profile_from_columns,
    schema_digest,
    stat_text,
    validate_profile_mode,
    validate_sample_rows,
)

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "PROFILE_DRIVERS",
    "SCHEMA_ID_DOMAIN",
    "SCHEMA_SOURCES",
    "SYSTEM_COLUMNS",
    "ProfileObservation",
    "SchemaField",
    "SchemaProfile",
    "class_name_for",
    "duckdb_type_for_annotation",
    "is_system_column",
    "model_columns",
    "profile_file",
    "profile_from_columns",
    "profile_sqlmodel",
    "render_sqlmodel_stub",
    "schema_digest",
    "stats_from_row",
    "stats_sql",
    "validate_profile_mode",
    "validate_sample_rows",
]


def profile_file(
    path: str | os.PathLike[str], driver: str, *, sample_rows: int | None = None
) -> ProfileObservation:
    """Profile a parquet, csv or json file without loading it.

    Parameters
    ----------
    path:
        The file.
    driver:
        ``"parquet"``, ``"csv"`` or ``"json"``.
    sample_rows:
        For csv/json: at most this many rows are read, to sniff types and
        compute statistics (default :data:`DEFAULT_SAMPLE_ROWS`). Parquet
        profiles read only the footer, whatever this says.

    Returns
    -------
    ProfileObservation
        A ``"file"`` observation (``n_rows`` for parquet, ``sampled_rows``
        for csv/json).

    Raises
    ------
    ValueError
        If the driver cannot be profiled.
    FileNotFoundError
        If the file does not exist.
    """
    path = os.fspath(path)
    if driver not in PROFILE_DRIVERS:
        raise ValueError(
            f"cannot profile a {driver!r} artifact; schema profiles cover {PROFILE_DRIVERS}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot profile {path}: no such file")
    if driver == "parquet":
        return _profile_parquet(path)
    described, sampled, stats = sample_file(path, driver, sample_rows or DEFAULT_SAMPLE_ROWS)
    return profile_from_columns(
        [(name, kind, True) for name, kind in described],
        source="file",
        n_rows=None,
        sampled_rows=sampled,
        stats=stats,
    )


def _profile_parquet(path: str) -> ProfileObservation:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    arrow_schema = pf.schema_arrow
    described = describe_parquet(path)
    nullable = {f.name: f.nullable for f in arrow_schema}
    dtypes: dict[str, str] = {}
    pandas_meta = arrow_schema.pandas_metadata or {}
    for col in pandas_meta.get("columns", []) or []:
        name = col.get("field_name") or col.get("name")
        if not isinstance(name, str):
            continue
        if col.get("pandas_type") == "categorical":
            dtypes[name] = "category"
        elif col.get("numpy_type"):
            dtypes[name] = str(col["numpy_type"])
    for f in arrow_schema:
        if f.name not in dtypes and pa.types.is_dictionary(f.type):
            dtypes[f.name] = "category"
    metadata = pf.metadata
    stats = _parquet_footer_stats(metadata, {name for name, _ in described})
    columns = [(name, kind, nullable.get(name, True)) for name, kind in described]
    return profile_from_columns(
        columns,
        source="file",
        n_rows=int(metadata.num_rows),
        sampled_rows=None,
        stats=stats,
        dtypes=dtypes,
    )


def _parquet_footer_stats(metadata: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    """Null counts and min/max of top-level leaf columns, over all row groups."""
    stats: dict[str, dict[str, Any]] = {}
    unusable: set[str] = set()
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for ci in range(group.num_columns):
            column = group.column(ci)
            name = column.path_in_schema
            if name not in names or name in unusable:
                continue  # nested leaves (a.b, list.element) are not summarised
            st = column.statistics
            if st is None:
                unusable.add(name)
                stats.pop(name, None)
                continue
            entry = stats.setdefault(name, {"null_count": 0})
            if st.has_null_count and "null_count" in entry:
                entry["null_count"] += int(st.null_count)
            else:
                entry.pop("null_count", None)
            if st.has_min_max:
                try:
                    low, high = st.min, st.max
                    if "min" not in entry or low < entry["_min"]:
                        entry["_min"], entry["min"] = low, stat_text(low)
                    if "max" not in entry or high > entry["_max"]:
                        entry["_max"], entry["max"] = high, stat_text(high)
                except (TypeError, ValueError):  # incomparable / undecodable values
                    entry.pop("min", None)
                    entry.pop("max", None)
    for entry in stats.values():
        entry.pop("_min", None)
        entry.pop("_max", None)
    return stats

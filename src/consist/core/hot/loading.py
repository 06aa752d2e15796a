"""Reading an artifact's data back: ``load`` (a DuckDB relation) and ``load_df``.

The file is read through its driver (:mod:`consist.core.drivers.tabular`).
When the file is gone but the artifact's rows were ingested, the rows come
from the store's ``global_tables`` instead (:class:`~consist.core.store.hot_store.HotStore`).
The public entry points, with the full parameter reference, are
``consist.load`` / ``consist.load_df`` and ``Tracker.load`` / ``Tracker.load_df``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from consist.models.artifact import Artifact

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.store.hot_store import HotStore

__all__ = ["Locate", "load_dataframe", "load_relation"]

Locate = Callable[[Artifact], "str | None"]
"""Resolves an artifact without an absolute path to a local file (None if it has none)."""

_duck: list[Any] = []


def _local_file(artifact: Artifact, locate: Locate | None) -> str:
    if not isinstance(artifact, Artifact):
        raise TypeError(f"expected an Artifact, got {type(artifact).__name__}")
    path = artifact.abs_path
    if path is None and locate is not None:
        path = locate(artifact)
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(
            f"artifact {artifact.key!r} is not available locally ({artifact.uri})"
        )
    return path


# Drivers whose data is not a plain table, by the driver module that loads them.
# A module provides ``load(path, artifact, columns=None, **kwargs)`` (its natural
# object: a DataFrame for tables, an xarray Dataset for arrays, a GeoDataFrame for
# layers) and may provide ``load_dataframe(path, artifact, columns=None, **kwargs)``.
NATURAL_LOADERS = {
    "h5": "hdf5",
    "h5_table": "hdf5",
    "netcdf": "netcdf",
    "zarr": "zarr",
    "openmatrix": "openmatrix",
    "geojson": "spatial",
    "geopackage": "spatial",
    "shapefile": "spatial",
    "geoparquet": "spatial",
}


def _natural(
    artifact: Artifact, path: str, function: str, columns: list[str] | None, kwargs: dict
) -> Any:
    """Load a non-tabular artifact through its driver module (see ``NATURAL_LOADERS``)."""
    import importlib

    module_name = NATURAL_LOADERS.get(artifact.driver or "")
    if module_name is None:
        raise ValueError(
            f"no loader for driver {artifact.driver!r} in this version; use artifact.path"
        )
    module = importlib.import_module(f"consist.core.drivers.{module_name}")
    loader = getattr(module, function, None)
    if loader is None:
        raise ValueError(
            f"artifact {artifact.key!r} ({artifact.driver}) has no DataFrame form; use "
            "tracker.load(artifact) for its natural object"
        )
    return loader(path, artifact, columns=columns, **kwargs)


def _ingested_rows(
    artifact: Artifact, hot: HotStore | None, include_provenance: bool, columns: list[str] | None
) -> Any:
    """The artifact's ingested rows as a ``pyarrow.Table`` (None without a store or rows)."""
    if hot is None:
        return None
    return hot.read_artifact_rows(
        artifact.id, key=artifact.key, include_provenance=include_provenance, columns=columns
    )


def _column_list(columns: Any) -> list[str] | None:
    """``columns=`` as a list of column names (None when not given)."""
    if columns is None:
        return None
    if isinstance(columns, str | Mapping):
        raise TypeError(
            "columns must be a list of column names, e.g. columns=['a', 'b'] "
            "(to set CSV column types, pass dtype={'a': 'VARCHAR'})"
        )
    try:
        names = list(columns)
    except TypeError:
        raise TypeError("columns must be a list of column names") from None
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ValueError(f"columns must be a non-empty list of column names, got {columns!r}")
    return names


def _check_columns(wanted: list[str], available: list[str], artifact: Artifact) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(
            f"columns {missing} are not in artifact {artifact.key!r} (it has {available})"
        )


def _no_reader_options(options: dict[str, Any], artifact: Artifact) -> None:
    """Reader options cannot apply to rows read back from the store: refuse them."""
    if options:
        raise ValueError(
            f"artifact {artifact.key!r}: its file is missing, so its ingested rows are read "
            f"from the database, where the file-reader option(s) {sorted(options)} cannot "
            "apply; pass only columns= / include_provenance=, or restore the file"
        )


def load_relation(
    artifact: Artifact, *, locate: Locate | None = None, hot: HotStore | None = None, **kwargs: Any
) -> Any:
    """The artifact's data as a lazy DuckDB relation (see ``consist.load``).

    ``locate`` resolves an artifact without an absolute path (a tracker's
    mounts); ``hot`` serves ingested rows when the file is gone. Raises as
    ``consist.load`` documents.
    """
    from consist.core.drivers import tabular

    include_provenance = bool(kwargs.pop("include_provenance", False))
    columns = _column_list(kwargs.pop("columns", None))
    if not _duck:
        import duckdb

        _duck.append(duckdb.connect())
    try:
        path = _local_file(artifact, locate)
    except FileNotFoundError:
        rows = _ingested_rows(artifact, hot, include_provenance, columns)
        if rows is None:
            raise
        _no_reader_options(kwargs, artifact)
        return _duck[0].from_arrow(rows)
    if artifact.driver not in tabular.TABULAR_DRIVERS:
        return _natural(artifact, path, "load", columns, kwargs)
    import duckdb

    try:
        relation = tabular.load_relation(path, artifact.driver, _duck[0], **kwargs)
    except duckdb.Error as exc:
        if not kwargs:
            raise
        raise ValueError(
            f"could not read artifact {artifact.key!r} ({artifact.driver}) with option(s) "
            f"{sorted(kwargs)}: {exc}"
        ) from exc
    if columns is None:
        return relation
    _check_columns(columns, list(relation.columns), artifact)
    return relation.select(*(duckdb.ColumnExpression(c) for c in columns))


def load_dataframe(
    artifact: Artifact, *, locate: Locate | None = None, hot: HotStore | None = None, **kwargs: Any
) -> Any:
    """The artifact's data as a pandas DataFrame (see ``consist.load_df``).

    ``locate`` and ``hot`` as for :func:`load_relation`. Raises as
    ``consist.load_df`` documents.
    """
    from consist.core.drivers import tabular

    include_provenance = bool(kwargs.pop("include_provenance", False))
    columns = _column_list(kwargs.pop("columns", None))
    try:
        path = _local_file(artifact, locate)
    except FileNotFoundError:
        rows = _ingested_rows(artifact, hot, include_provenance, columns)
        if rows is None:
            raise
        _no_reader_options(kwargs, artifact)
        return rows.to_pandas()
    if artifact.driver not in tabular.TABULAR_DRIVERS:
        return _natural(artifact, path, "load_dataframe", columns, kwargs)
    if columns is not None and artifact.driver == "parquet" and os.path.isfile(path):
        import pyarrow.parquet as pq

        # Check against the file's schema (metadata only), then read just those columns.
        _check_columns(columns, list(pq.read_schema(path).names), artifact)
        return tabular.load_dataframe(path, "parquet", columns=columns, **kwargs)
    frame = tabular.load_dataframe(path, artifact.driver, **kwargs)
    if columns is None:
        return frame
    _check_columns(columns, [str(c) for c in frame.columns], artifact)
    return frame[columns]

"""NetCDF files: describe their structure and load them as xarray Datasets.

The structure recorded for a NetCDF artifact (``meta["netcdf"]``, see
:func:`describe_dataset`) lists every variable (name, dimensions, dtype,
shape, attributes, whether it is a coordinate), the dimension sizes, the
coordinate names and the global attributes, with every value made JSON-safe.
:func:`structure_facet` turns it into the artifact's facet, whose scalar
fields are key/value indexed (``dimensions.<dim>``, ``variables.<name>.dtype``,
``attributes.<name>`` ...).

Files are read through xarray (``netcdf`` extra: xarray with the h5netcdf or
netCDF4 engine, picked by xarray). xarray is imported only when a function
here needs it, so importing this module stays cheap. The Zarr driver
(:mod:`consist.core.drivers.zarr`) reuses the dataset description.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "META_KEY",
    "describe_dataset",
    "describe_file",
    "json_safe",
    "load",
    "load_dataframe",
    "require_xarray",
    "select_variables",
    "structure_facet",
    "structure_meta",
    "variables_arg",
]

META_KEY = "netcdf"
"""Key of the structure description in a NetCDF artifact's ``meta``."""

_MAX_ATTR_CHARS = 4096  # a longer attribute value is truncated in the recorded metadata


def require_xarray(purpose: str, extra: str = "netcdf") -> Any:
    """Import xarray, or raise an ImportError naming ``purpose`` and the extra to install."""
    try:
        import xarray
    except ImportError as exc:
        raise ImportError(f"{purpose} needs xarray: pip install 'consist[{extra}]'") from exc
    return xarray


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (numpy scalars/arrays, bytes and the like converted)."""
    if value is None or isinstance(value, bool | str):
        return value[:_MAX_ATTR_CHARS] if isinstance(value, str) else value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")[:_MAX_ATTR_CHARS]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return str(value)[:_MAX_ATTR_CHARS]


def describe_dataset(ds: Any) -> dict[str, Any]:
    """The structure of an xarray Dataset as JSON-safe data.

    Returns
    -------
    dict
        ``variables``: one dict per variable (data variables, then
        coordinates) with ``name``, ``dims``, ``dtype``, ``shape``,
        ``attributes`` and ``is_coordinate``; ``dimensions``: ``{name: size}``;
        ``coordinates``: coordinate names; ``attributes``: global attributes.
    """
    variables = []
    for is_coord, mapping in ((False, ds.data_vars), (True, ds.coords)):
        for name, var in mapping.items():
            variables.append(
                {
                    "name": str(name),
                    "dims": [str(d) for d in var.dims],
                    "dtype": str(var.dtype),
                    "shape": [int(n) for n in var.shape],
                    "attributes": json_safe(dict(var.attrs)),
                    "is_coordinate": is_coord,
                }
            )
    return {
        "variables": variables,
        "dimensions": {str(k): int(v) for k, v in ds.sizes.items()},
        "coordinates": [str(c) for c in ds.coords],
        "attributes": json_safe(dict(ds.attrs)),
    }


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Open the NetCDF file at ``path`` and describe it (see :func:`describe_dataset`).

    Raises
    ------
    ImportError
        If xarray is not installed.
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` cannot be read as NetCDF.
    """
    xr = require_xarray("log_netcdf_file")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {path!r} is not a NetCDF file that exists")
    try:
        with xr.open_dataset(path) as ds:
            return describe_dataset(ds)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"path {path!r} could not be read as NetCDF ({exc}); pass a NetCDF file "
            "(log other files with log_artifact)"
        ) from exc


def structure_facet(structure: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The artifact facet for a described dataset: scalar fields, key/value indexable.

    ``format``, ``dimensions.<dim>`` (size), ``variables.<name>.dtype`` /
    ``.dims`` (comma-joined) / ``.ndim`` / ``.is_coordinate``, and the scalar
    global attributes under ``attributes.<name>``.
    """
    variables = {
        v["name"]: {
            "dtype": v["dtype"],
            "dims": ",".join(v["dims"]),
            "ndim": len(v["dims"]),
            "is_coordinate": v["is_coordinate"],
        }
        for v in structure["variables"]
    }
    attributes = {
        k: v for k, v in structure["attributes"].items() if isinstance(v, str | int | float | bool)
    }
    return {
        "format": fmt,
        "dimensions": dict(structure["dimensions"]),
        "variables": variables,
        "attributes": attributes,
    }


def structure_meta(structure: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """Artifact metadata for a described dataset: the structure under ``fmt`` plus
    its indexed facet (see :func:`structure_facet`)."""
    return {
        fmt: dict(structure),
        "facet": structure_facet(structure, fmt),
        "facet_index": True,
    }


def select_variables(ds: Any, names: Any, what: str) -> Any:
    """``ds`` restricted to the data variables ``names`` (coordinates kept).

    Raises
    ------
    TypeError
        If ``names`` is a string or not a list of names.
    KeyError
        If a name is not a variable of ``ds`` (the message lists them).
    """
    if names is None:
        return ds
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise TypeError(f"variables must be a list of variable names, e.g. ['{names}']")
    wanted = list(names)
    if not wanted or not all(isinstance(n, str) and n for n in wanted):
        raise ValueError(f"variables must be a non-empty list of names, got {names!r}")
    missing = [n for n in wanted if n not in ds.data_vars]
    if missing:
        raise KeyError(f"variables {missing} are not in {what} (it has {sorted(ds.data_vars)})")
    return ds[wanted]


def variables_arg(columns: Any, variables: Any) -> Any:
    """The variable selection from ``load``'s ``columns=`` or ``variables=``."""
    if columns is not None and variables is not None:
        raise ValueError("give columns= or variables= (the same selection), not both")
    return variables if variables is not None else columns


def load(
    path: str | os.PathLike[str],
    artifact: Any,
    columns: list[str] | None = None,
    *,
    variables: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Open a NetCDF artifact as an ``xarray.Dataset`` (lazily, as ``xarray.open_dataset``).

    ``columns`` (or ``variables``) keeps only those data variables;
    ``kwargs`` go to ``xarray.open_dataset`` (e.g. ``engine=``, ``chunks=``).
    """
    xr = require_xarray("loading a NetCDF artifact")
    ds = xr.open_dataset(os.fspath(path), **kwargs)
    try:
        return select_variables(ds, variables_arg(columns, variables), f"{artifact.key!r}")
    except Exception:
        ds.close()
        raise


def load_dataframe(
    path: str | os.PathLike[str],
    artifact: Any,
    columns: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """A NetCDF artifact as a long DataFrame: one row per grid cell, dimensions as columns."""
    with load(path, artifact, columns=columns, **kwargs) as ds:
        return ds.to_dataframe().reset_index()

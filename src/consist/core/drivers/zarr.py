"""Zarr stores: hashing, describing, loading, and writing a step's xarray return.

Hashing
-------
A Zarr store is a directory artifact (``<name>.zarr``, driver ``zarr``). Its
digest is the directory digest of :func:`consist.core.identity.hashing.hash_directory`,
a Merkle list over every regular file below the store: the metadata documents
(``zarr.json``, or ``.zarray``/``.zattrs``/``.zgroup`` for format 2) and each
chunk file, each entered as its relative POSIX path plus the BLAKE3 digest of
its bytes, in path order. So rewriting one chunk with other values changes
the digest, rewriting it with the same values (or touching files, or copying
the store elsewhere) does not, and unchanged chunk files are served from the
hasher's stat cache when the store is logged again.

Loading
-------
:func:`load` opens the store with xarray's ``zarr`` engine (``zarr`` extra)
and returns an ``xarray.Dataset``; ``columns``/``variables`` keep only those
data variables.

A step returning xarray
-----------------------
:func:`write_returned` writes a Dataset/DataArray that a step returned for a
declared output into the run's artifact directory. The rule: NetCDF
(``<key>.nc``) by default; a Zarr store (``<key>.zarr``) when the object is
chunked (dask-backed) or holds more than :data:`ZARR_THRESHOLD_BYTES` bytes,
where one NetCDF file would be written (and later re-hashed) as one piece.
A DataArray is stored as a one-variable Dataset named after the array, or
after the output key when it has no name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from consist.core.drivers import netcdf

__all__ = [
    "META_KEY",
    "ZARR_THRESHOLD_BYTES",
    "describe_store",
    "load",
    "load_dataframe",
    "write_returned",
]

META_KEY = "zarr"
"""Key of the structure description in a Zarr artifact's ``meta``."""

ZARR_THRESHOLD_BYTES = 1 << 30
"""A returned xarray object larger than this (in memory) is written as Zarr, not NetCDF."""


def _require_zarr(purpose: str) -> Any:
    xr = netcdf.require_xarray(purpose, extra="zarr")
    try:
        import zarr  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{purpose} needs zarr: pip install 'consist[zarr]'") from exc
    return xr


def _consolidated(path: str) -> bool:
    """Whether the store carries consolidated metadata (so xarray reads it, without
    falling back with a warning when it does not)."""
    if os.path.isfile(os.path.join(path, ".zmetadata")):  # Zarr format 2
        return True
    root = os.path.join(path, "zarr.json")  # Zarr format 3
    if not os.path.isfile(root):
        return False
    try:
        with open(root, encoding="utf-8") as fh:
            document = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and bool(document.get("consolidated_metadata"))


def _open(xr: Any, path: str | os.PathLike[str], kwargs: dict[str, Any]) -> Any:
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"path {path!r} is not a Zarr store directory that exists")
    kwargs.setdefault("chunks", None)
    kwargs.setdefault("consolidated", _consolidated(path))
    return xr.open_dataset(path, engine="zarr", **kwargs)


def describe_store(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The structure of the Zarr store at ``path`` (as :func:`netcdf.describe_dataset`).

    Each variable also gets ``chunks`` (its chunk shape on disk, when known).
    """
    xr = _require_zarr("describing a Zarr store")
    with _open(xr, path, {}) as ds:
        structure = netcdf.describe_dataset(ds)
        for entry in structure["variables"]:
            chunks = ds[entry["name"]].encoding.get("chunks")
            entry["chunks"] = [int(c) for c in chunks] if chunks is not None else None
    return structure


def load(
    path: str | os.PathLike[str],
    artifact: Any,
    columns: list[str] | None = None,
    *,
    variables: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Open a Zarr artifact as an ``xarray.Dataset`` (lazily).

    ``columns`` (or ``variables``) keeps only those data variables;
    ``kwargs`` go to ``xarray.open_dataset(engine="zarr")`` (``chunks=None``
    unless given, so dask is not needed; ``consolidated`` from the store).
    """
    xr = _require_zarr("loading a Zarr artifact")
    ds = _open(xr, path, kwargs)
    names = netcdf.variables_arg(columns, variables)
    try:
        return netcdf.select_variables(ds, names, f"{artifact.key!r}")
    except Exception:
        ds.close()
        raise


def load_dataframe(
    path: str | os.PathLike[str],
    artifact: Any,
    columns: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """A Zarr artifact as a long DataFrame: one row per grid cell, dimensions as columns."""
    with load(path, artifact, columns=columns, **kwargs) as ds:
        return ds.to_dataframe().reset_index()


def _as_dataset(value: Any, key: str) -> Any:
    if type(value).__name__ == "DataArray":
        return value.to_dataset(name=value.name if value.name is not None else key)
    return value


def write_returned(value: Any, directory: Path, key: str) -> tuple[Path, dict[str, Any]]:
    """Write an xarray object a step returned for output ``key``; see the module docstring.

    Returns
    -------
    tuple
        The written path and the artifact metadata describing it
        (``{"netcdf": structure, ...}`` or ``{"zarr": structure, ...}`` with
        the indexed facet, see :func:`netcdf.structure_meta`).

    Raises
    ------
    ImportError
        If the writer for the chosen format is not installed (naming the extra).
    """
    ds = _as_dataset(value, key)
    directory.mkdir(parents=True, exist_ok=True)
    chunked = bool(getattr(ds, "chunks", None))
    if chunked or int(ds.nbytes) > ZARR_THRESHOLD_BYTES:
        _require_zarr(f"writing output {key!r} as Zarr")
        path = directory / f"{key}.zarr"
        ds.to_zarr(path, mode="w", consolidated=False)
        return path, netcdf.structure_meta(describe_store(path), META_KEY)
    path = directory / f"{key}.nc"
    try:
        ds.to_netcdf(path)
    except (ImportError, ValueError) as exc:
        if isinstance(exc, ImportError) or "engine" in str(exc).lower():
            raise ImportError(
                f"writing output {key!r} as NetCDF needs a netCDF engine: "
                "pip install 'consist[netcdf]'"
            ) from exc
        raise
    return path, netcdf.structure_meta(netcdf.describe_file(path), netcdf.META_KEY)

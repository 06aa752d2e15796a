"""Tabular formats (parquet, csv, json): load as DataFrame or DuckDB relation, write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TABULAR_DRIVERS = ("parquet", "csv", "json")


def load_dataframe(path: str | os.PathLike[str], driver: str, **kwargs: Any) -> Any:
    """Read a parquet/csv/json file into a pandas DataFrame.

    Raises
    ------
    ValueError
        If ``driver`` is not a tabular driver.
    """
    import pandas as pd

    path = os.fspath(path)
    if driver == "parquet":
        return pd.read_parquet(path, **kwargs)
    if driver == "csv":
        sep = kwargs.pop("sep", "\t" if path.lower().endswith(".tsv") else ",")
        return pd.read_csv(path, sep=sep, **kwargs)
    if driver == "json":
        lines = kwargs.pop("lines", path.lower().endswith(".jsonl"))
        return pd.read_json(path, lines=lines, **kwargs)
    raise ValueError(
        f"cannot load driver {driver!r} as a DataFrame; tabular drivers are {TABULAR_DRIVERS}"
    )


def load_relation(
    path: str | os.PathLike[str], driver: str, con: Any = None, **options: Any
) -> Any:
    """A lazy DuckDB relation over a parquet/csv/json file.

    ``options`` go to DuckDB's ``read_parquet`` / ``read_csv`` / ``read_json``.
    """
    import duckdb

    con = con or duckdb.connect()
    path = os.fspath(path)
    if driver == "parquet":
        return con.read_parquet(path, **options)
    if driver == "csv":
        return con.read_csv(path, **options)
    if driver == "json":
        return con.read_json(path, **options)
    raise ValueError(
        f"cannot load driver {driver!r} as a relation; tabular drivers are {TABULAR_DRIVERS}"
    )


def write_table(value: Any, directory: Path, key: str) -> Path:
    """Write a DataFrame (or Series) returned by a step to ``directory/key.parquet``."""
    import pandas as pd

    if isinstance(value, pd.Series):
        value = value.to_frame(name=value.name if value.name is not None else key)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.parquet"
    value.to_parquet(path)
    return path


def is_table(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame/Series (without importing pandas)."""
    module = type(value).__module__
    return module.startswith("pandas") and type(value).__name__ in ("DataFrame", "Series")


def is_xarray(value: Any) -> bool:
    """Whether ``value`` is an xarray Dataset/DataArray (without importing xarray)."""
    return type(value).__module__.startswith("xarray") and type(value).__name__ in (
        "Dataset",
        "DataArray",
    )


def write_xarray(value: Any, directory: Path, key: str) -> Path:
    """Write an xarray object to ``directory/key.nc`` (needs the ``netcdf`` extra)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.nc"
    try:
        value.to_netcdf(path)
    except (ImportError, ValueError) as exc:
        if "engine" in str(exc).lower() or isinstance(exc, ImportError):
            raise ImportError(
                "writing an xarray output needs a netCDF engine: pip install 'consist[netcdf]'"
            ) from exc
        raise
    return path

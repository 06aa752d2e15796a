"""Driver names and inference from file extensions.

A driver names the format family of an artifact. Loading and describing
each family lives in its own module of this package; this registry only
knows names and extensions, so it is cheap to import.
"""

from __future__ import annotations

import os

# Longest suffixes first so that ".geo.parquet" wins over ".parquet".
_EXTENSIONS: tuple[tuple[str, str], ...] = (
    (".geo.parquet", "geoparquet"),
    (".geoparquet", "geoparquet"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv.gz", "csv"),
    (".csv", "csv"),
    (".tsv", "csv"),
    (".jsonl", "json"),
    (".json", "json"),
    (".h5", "h5"),
    (".hdf5", "h5"),
    (".hdf", "h5"),
    (".nc", "netcdf"),
    (".nc4", "netcdf"),
    (".netcdf", "netcdf"),
    (".omx", "openmatrix"),
    (".zarr", "zarr"),
    (".geojson", "geojson"),
    (".gpkg", "geopackage"),
    (".shp", "shapefile"),
)

KNOWN_DRIVERS: frozenset[str] = frozenset(
    {name for _, name in _EXTENSIONS} | {"other", "h5_table", "directory"}
)


def infer_driver(path: str | os.PathLike[str]) -> str:
    """The driver for ``path`` from its extension (case-insensitive), else ``"other"``."""
    name = os.fspath(path).rstrip("/").lower()
    for suffix, driver in _EXTENSIONS:
        if name.endswith(suffix):
            return driver
    return "other"


def validate_driver(driver: str) -> str:
    """Check an explicit ``driver=`` argument against the known names."""
    if driver not in KNOWN_DRIVERS:
        raise ValueError(
            f"driver={driver!r} is not known; use one of {', '.join(sorted(KNOWN_DRIVERS))} "
            "or leave driver=None to infer it from the extension"
        )
    return driver

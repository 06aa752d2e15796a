"""Spatial layers: GeoPackage, GeoJSON, Shapefile bundles and GeoParquet.

Detect
    By extension (:mod:`consist.core.drivers.registry`): ``.gpkg`` ->
    ``geopackage``, ``.geojson`` -> ``geojson``, ``.shp`` -> ``shapefile``,
    ``.geoparquet`` / ``.geo.parquet`` -> ``geoparquet``.
Hash
    Like any file, except a Shapefile: its ``.shp`` is digested together with
    its sidecar files (``.shx``, ``.dbf``, ``.prj``, ``.cpg``, ...), see
    :func:`consist.core.identity.hashing.shapefile_bundle`.
Describe
    :func:`describe` returns a JSON-ready dict: bounds, CRS (EPSG code and
    WKT), geometry types present, feature count, layer names and per-layer
    details (a GeoPackage holds several layers; the other formats one).
Load
    :func:`load` returns a ``geopandas.GeoDataFrame``; ``load_dataframe`` the
    same object (a GeoDataFrame is a DataFrame).

The libraries (geopandas, pyogrio, pyproj, pyarrow) are imported lazily; a
missing one raises ImportError naming the ``spatial`` extra.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

__all__ = ["SPATIAL_DRIVERS", "describe", "load", "load_dataframe"]

SPATIAL_DRIVERS: tuple[str, ...] = ("geopackage", "geojson", "shapefile", "geoparquet")
"""The driver names of spatial layers."""

_OGR_DRIVERS = ("geopackage", "geojson", "shapefile")


def require(what: str) -> Any:
    """Import geopandas (and pyogrio) or raise ImportError naming the extra.

    Parameters
    ----------
    what:
        The operation that needs the library, for the message.

    Returns
    -------
    module
        ``geopandas``.
    """
    try:
        import geopandas
        import pyogrio  # noqa: F401  (geopandas' reader)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs geopandas and pyogrio: pip install 'consist[spatial]'"
        ) from exc
    return geopandas


def _check_driver(driver: str) -> str:
    if driver not in SPATIAL_DRIVERS:
        raise ValueError(
            f"driver={driver!r} is not a spatial driver; use one of {', '.join(SPATIAL_DRIVERS)}"
        )
    return driver


def _bounds(values: Any) -> list[float] | None:
    """``[minx, miny, maxx, maxy]`` as floats, or None when empty (NaN)."""
    if values is None:
        return None
    out = [float(v) for v in values]
    if len(out) != 4 or any(math.isnan(v) for v in out):
        return None
    return out


def _union(boxes: list[list[float] | None]) -> list[float] | None:
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return [
        min(b[0] for b in present),
        min(b[1] for b in present),
        max(b[2] for b in present),
        max(b[3] for b in present),
    ]


def _crs(value: Any) -> dict[str, Any] | None:
    """``{"epsg": int | None, "wkt": str, "name": str}`` of a CRS given in any pyproj form."""
    if value is None or value == "":
        return None
    from pyproj import CRS

    if isinstance(value, dict):  # PROJJSON (GeoParquet metadata)
        crs = CRS.from_json_dict(value)
    else:
        crs = value if isinstance(value, CRS) else CRS.from_user_input(value)
    return {"epsg": crs.to_epsg(), "wkt": crs.to_wkt(), "name": crs.name}


def _geometry_types(geoseries: Any) -> list[str]:
    """The distinct geometry types present (sorted; missing/empty geometries ignored)."""
    kinds = geoseries[~(geoseries.isna() | geoseries.is_empty)].geom_type
    return sorted({str(k) for k in kinds.unique()})


def _ogr_layer(path: str, layer: str) -> dict[str, Any]:
    import pyogrio

    info = pyogrio.read_info(path, layer=layer, force_feature_count=True, force_total_bounds=True)
    geometry = pyogrio.read_dataframe(path, layer=layer, columns=[], read_geometry=True)
    return {
        "feature_count": int(info["features"]),
        "bounds": _bounds(info.get("total_bounds")),
        "crs": _crs(info.get("crs")),
        "geometry_types": _geometry_types(geometry.geometry),
        "declared_geometry_type": info.get("geometry_type"),
        "fields": [str(f) for f in info.get("fields", [])],
    }


def _geoparquet_layer(path: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    raw = (parquet.schema_arrow.metadata or {}).get(b"geo")
    if raw is None:
        raise ValueError(f"{path} is not GeoParquet: its schema has no 'geo' metadata")
    geo = json.loads(raw)
    column = geo.get("primary_column") or "geometry"
    spec = geo.get("columns", {}).get(column, {})
    geopandas = require("describing a GeoParquet file")
    frame = geopandas.read_parquet(path, columns=[column])
    # GeoParquet: an absent "crs" means OGC:CRS84, an explicit null an unknown CRS.
    crs = spec.get("crs", "OGC:CRS84")
    fields = [name for name in parquet.schema_arrow.names if name != column]
    return {
        "feature_count": int(parquet.metadata.num_rows),
        "bounds": _bounds(frame.total_bounds) if len(frame) else None,
        "crs": _crs(crs),
        "geometry_types": _geometry_types(frame.geometry),
        "declared_geometry_type": spec.get("geometry_types") or None,
        "fields": fields,
        "geometry_column": column,
    }


def _layer_names(path: str, driver: str) -> list[str]:
    if driver == "geoparquet":
        name = os.path.basename(path)
        for suffix in (".geo.parquet", ".geoparquet", ".parquet"):
            if name.lower().endswith(suffix):
                return [name[: -len(suffix)]]
        return [name]
    import pyogrio

    return [str(row[0]) for row in pyogrio.list_layers(path)]


def describe(path: str | os.PathLike[str], driver: str) -> dict[str, Any]:
    """Describe a spatial file: bounds, CRS, geometry types, counts, layers.

    Parameters
    ----------
    path:
        The file (for a Shapefile, its ``.shp``).
    driver:
        ``"geopackage"``, ``"geojson"``, ``"shapefile"`` or ``"geoparquet"``.

    Returns
    -------
    dict
        ``driver``; ``layers`` (names, in file order); ``layer_details``
        (per layer: ``feature_count``, ``bounds`` as ``[minx, miny, maxx,
        maxy]`` or None when empty, ``crs`` as ``{"epsg", "wkt", "name"}`` or
        None, ``geometry_types`` present, ``declared_geometry_type``,
        ``fields``); and over all layers ``feature_count`` (sum), ``bounds``
        (union; meaningful when the layers share a CRS), ``geometry_types``
        (union), ``crs`` (the layers' common CRS, None if they differ or have
        none); a Shapefile adds ``bundle`` (the suffixes hashed with it).

    Raises
    ------
    ValueError
        If ``driver`` is not a spatial driver, or the file is not readable
        as that format.
    FileNotFoundError
        If ``path`` does not exist.
    ImportError
        If geopandas / pyogrio are missing (the ``spatial`` extra).
    """
    _check_driver(driver)
    require("describing a spatial file")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot describe {path}: it does not exist")
    layers = _layer_names(path, driver)
    if driver == "geoparquet":
        details = {layers[0]: _geoparquet_layer(path)}
    else:
        details = {name: _ogr_layer(path, name) for name in layers}
    crs_set = {json.dumps(d["crs"], sort_keys=True) for d in details.values()}
    out: dict[str, Any] = {
        "driver": driver,
        "layers": layers,
        "layer_details": details,
        "feature_count": sum(d["feature_count"] for d in details.values()),
        "bounds": _union([d["bounds"] for d in details.values()]),
        "geometry_types": sorted({t for d in details.values() for t in d["geometry_types"]}),
        "crs": json.loads(crs_set.pop()) if len(crs_set) == 1 else None,
    }
    if driver == "shapefile":
        from consist.core.identity.hashing import shapefile_bundle

        stem = len(os.path.basename(path)) - 4
        out["bundle"] = [os.path.basename(p)[stem:] for p in shapefile_bundle(path)]
    return out


def _columns(columns: Any) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns):
        raise TypeError("columns must be a list of attribute column names, e.g. columns=['zone']")
    return list(columns)


def load(path: str, artifact: Any, columns: list[str] | None = None, **kwargs: Any) -> Any:
    """Read a spatial artifact as a ``geopandas.GeoDataFrame``.

    Parameters
    ----------
    path:
        The local file (a Shapefile's ``.shp``).
    artifact:
        The artifact (its ``driver`` picks the reader; its key names errors).
    columns:
        Attribute columns to read; the geometry column is always included.
    **kwargs:
        ``layer=`` names a GeoPackage layer (required when it holds several);
        other options go to ``geopandas.read_file`` (pyogrio engine) or
        ``geopandas.read_parquet``.

    Returns
    -------
    geopandas.GeoDataFrame

    Raises
    ------
    KeyError
        If a column or layer is not in the file (the message lists what is).
    ValueError
        If a GeoPackage has several layers and no ``layer=`` is given.
    ImportError
        If geopandas / pyogrio are missing (the ``spatial`` extra).
    """
    driver = _check_driver(getattr(artifact, "driver", None) or "")
    key = getattr(artifact, "key", path)
    geopandas = require(f"loading spatial artifact {key!r}")
    wanted = _columns(columns)
    if driver == "geoparquet":
        import pyarrow.parquet as pq

        if "layer" in kwargs:
            raise ValueError("layer= applies to GeoPackage artifacts only; drop it")
        schema = pq.read_schema(path)
        geo = json.loads((schema.metadata or {}).get(b"geo", b"{}"))
        geometry = geo.get("primary_column", "geometry")
        available = [n for n in schema.names if n != geometry]
        if wanted is not None:
            _check(wanted, available, f"artifact {key!r}")
            wanted = [*wanted, geometry]
        return geopandas.read_parquet(path, columns=wanted, **kwargs)
    import pyogrio

    layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    layer = kwargs.pop("layer", None)
    if layer is None and len(layers) > 1:
        raise ValueError(
            f"artifact {key!r} holds layers {layers}; pass layer='{layers[0]}' (or another)"
        )
    if layer is not None:
        _check([layer], layers, f"artifact {key!r} (layers)")
    layer = layer if layer is not None else layers[0]
    if wanted is not None:
        fields = [str(f) for f in pyogrio.read_info(path, layer=layer)["fields"]]
        _check(wanted, fields, f"layer {layer!r} of artifact {key!r}")
    return geopandas.read_file(path, layer=layer, columns=wanted, engine="pyogrio", **kwargs)


def load_dataframe(
    path: str, artifact: Any, columns: list[str] | None = None, **kwargs: Any
) -> Any:
    """The same GeoDataFrame as :func:`load` (a GeoDataFrame is a pandas DataFrame)."""
    return load(path, artifact, columns=columns, **kwargs)


def _check(wanted: list[str], available: list[str], where: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(f"{missing} are not in {where}; it has {available}")

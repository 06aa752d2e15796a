"""Tracker methods for spatial layers (GeoPackage, GeoJSON, Shapefile, GeoParquet).

Mixed into :class:`~consist.core.tracker.Tracker` through
:class:`~consist.core.facade.formats.TrackerFormats`; reading and describing
the format lives in :mod:`consist.core.drivers.spatial`.

Spatial files are logged like any file (``log_artifact`` / ``log_output``;
the driver follows from the extension). Their description is made when it
is asked for: :meth:`TrackerSpatial.spatial_metadata` returns a view that
reads the artifact's file, after checking that it still holds the bytes the
artifact recorded, so a description never belongs to other content. A
description recorded at log time under the artifact's ``spatial`` metadata
key (``log_artifact(..., spatial=describe(path, driver))``, see
:func:`consist.core.drivers.spatial.describe`) is used instead of reading the
file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from consist.core.drivers.spatial import SPATIAL_DRIVERS
from consist.models.artifact import Artifact

__all__ = ["SpatialMetadataView", "TrackerSpatial"]

# (concept key, run id or None) -> the artifact, or None.
_Lookup = Callable[[str, "str | None"], "Artifact | None"]
# (path, recorded digest) -> whether the path still holds that content.
_Verify = Callable[[str, str], bool]


class SpatialMetadataView:
    """Bounds, CRS, geometry types and feature counts of a spatial artifact.

    Obtained from :meth:`TrackerSpatial.spatial_metadata`. Every method takes
    an optional ``concept_key`` (defaults to the view's key; the spec's
    ``view.get_bounds("parcels")`` passes it again), ``run_id=`` (the
    artifact that run logged; default the newest with the key) and, where it
    applies, ``layer=`` (a GeoPackage layer; default all layers together).
    Descriptions are computed once per artifact and view.
    """

    def __init__(self, concept_key: str, lookup: _Lookup, verify: _Verify) -> None:
        self.concept_key = concept_key
        self._lookup = lookup
        self._verify = verify
        self._described: dict[Any, dict[str, Any]] = {}

    def artifact(self, concept_key: str | None = None, *, run_id: str | None = None) -> Artifact:
        """The spatial artifact described (newest with the key, or ``run_id``'s).

        Raises
        ------
        KeyError
            If no artifact has the key (in that run).
        ValueError
            If the artifact is not a spatial layer (its driver is named).
        """
        key = _key(concept_key, self.concept_key)
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise TypeError(f"run_id must be a run id string, got {run_id!r}")
        art = self._lookup(key, run_id)
        if art is None:
            scope = f" in run {run_id!r}" if run_id is not None else ""
            raise KeyError(f"no artifact with key {key!r}{scope}; log it first")
        if art.driver not in SPATIAL_DRIVERS:
            raise ValueError(
                f"artifact {key!r} has driver {art.driver!r}, not a spatial layer "
                f"({', '.join(SPATIAL_DRIVERS)})"
            )
        return art

    def describe(
        self, concept_key: str | None = None, *, run_id: str | None = None
    ) -> dict[str, Any]:
        """The full description (see :func:`consist.core.drivers.spatial.describe`).

        Raises
        ------
        FileNotFoundError
            If the file is not available locally and no description was recorded.
        ValueError
            If the file no longer holds the content the artifact recorded.
        ImportError
            If geopandas / pyogrio are missing (the ``spatial`` extra).
        """
        art = self.artifact(concept_key, run_id=run_id)
        recorded = art.meta.get("spatial")
        if isinstance(recorded, dict) and "layer_details" in recorded:
            return recorded
        if art.id not in self._described:
            self._described[art.id] = self._read(art)
        return self._described[art.id]

    def _read(self, art: Artifact) -> dict[str, Any]:
        from consist.core.drivers import spatial

        spatial.require("spatial_metadata")
        path = art.abs_path
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(
                f"artifact {art.key!r} is not available locally ({art.uri}); restore its file"
            )
        if art.hash is None or not self._verify(path, art.hash):
            raise ValueError(
                f"{path} no longer holds the content recorded for artifact {art.key!r} "
                f"(run {art.run_id}); log the current file as a new artifact to describe it"
            )
        return spatial.describe(path, art.driver or "")

    def _part(self, concept_key: str | None, run_id: str | None, layer: str | None) -> dict:
        described = self.describe(concept_key, run_id=run_id)
        if layer is None:
            return described
        details = described["layer_details"]
        if layer not in details:
            raise KeyError(f"layer {layer!r} is not in the artifact; it has {described['layers']}")
        return details[layer]

    def get_bounds(
        self,
        concept_key: str | None = None,
        *,
        run_id: str | None = None,
        layer: str | None = None,
    ) -> tuple[float, float, float, float] | None:
        """``(minx, miny, maxx, maxy)`` in the layer's CRS; None when empty.

        Without ``layer``, the union over all layers.
        """
        bounds = self._part(concept_key, run_id, layer)["bounds"]
        return tuple(bounds) if bounds is not None else None  # type: ignore[return-value]

    def get_crs(
        self,
        concept_key: str | None = None,
        *,
        run_id: str | None = None,
        layer: str | None = None,
    ) -> dict[str, Any] | None:
        """``{"epsg": int | None, "wkt": str, "name": str}``; None when unknown or mixed."""
        return self._part(concept_key, run_id, layer)["crs"]

    def get_epsg(
        self,
        concept_key: str | None = None,
        *,
        run_id: str | None = None,
        layer: str | None = None,
    ) -> int | None:
        """The EPSG code of the CRS (None without one)."""
        crs = self.get_crs(concept_key, run_id=run_id, layer=layer)
        return crs["epsg"] if crs is not None else None

    def get_geometry_types(
        self,
        concept_key: str | None = None,
        *,
        run_id: str | None = None,
        layer: str | None = None,
    ) -> list[str]:
        """Geometry types present (e.g. ``["MultiPolygon", "Polygon"]``), sorted."""
        return list(self._part(concept_key, run_id, layer)["geometry_types"])

    def get_feature_count(
        self,
        concept_key: str | None = None,
        *,
        run_id: str | None = None,
        layer: str | None = None,
    ) -> int:
        """Number of features (summed over layers without ``layer``)."""
        return int(self._part(concept_key, run_id, layer)["feature_count"])

    def get_feature_counts(
        self, concept_key: str | None = None, *, run_id: str | None = None
    ) -> dict[str, int]:
        """Feature count per layer."""
        details = self.describe(concept_key, run_id=run_id)["layer_details"]
        return {name: int(d["feature_count"]) for name, d in details.items()}

    def get_layers(self, concept_key: str | None = None, *, run_id: str | None = None) -> list[str]:
        """Layer names in file order (one for GeoJSON, Shapefile and GeoParquet)."""
        return list(self.describe(concept_key, run_id=run_id)["layers"])

    def summary(self, concept_key: str | None = None, *, run_id: str | None = None) -> str:
        """A few readable lines: one per layer with count, types, CRS and bounds."""
        art = self.artifact(concept_key, run_id=run_id)
        described = self.describe(concept_key, run_id=run_id)
        lines = [f"{art.key} ({described['driver']}, run {art.run_id})"]
        for name, d in described["layer_details"].items():
            crs = d["crs"]
            crs_text = (
                "no CRS" if crs is None else (f"EPSG:{crs['epsg']}" if crs["epsg"] else crs["name"])
            )
            lines.append(
                f"  {name}: {d['feature_count']} features, "
                f"{'/'.join(d['geometry_types']) or 'no geometries'}, {crs_text}, "
                f"bounds {d['bounds']}"
            )
        return "\n".join(lines)


def _key(given: str | None, default: str) -> str:
    if given is None:
        return default
    if not isinstance(given, str) or not given:
        raise TypeError(f"concept_key must be a non-empty string, got {given!r}")
    return given


class TrackerSpatial:
    """Tracker methods for spatial layers (GeoPackage, GeoJSON, Shapefile, GeoParquet)."""

    def spatial_metadata(self, concept_key: str) -> SpatialMetadataView:
        """Access spatial metadata views for a given artifact key.

        Parameters
        ----------
        concept_key : str
            The semantic key identifying the spatial artifact (a GeoPackage,
            GeoJSON, Shapefile or GeoParquet logged as an input or output).

        Returns
        -------
        SpatialMetadataView
            A view with ``get_bounds``, ``get_crs``, ``get_epsg``,
            ``get_geometry_types``, ``get_feature_count(s)``, ``get_layers``,
            ``describe`` and ``summary``; each takes the key again optionally,
            ``run_id=`` and (where it applies) ``layer=``. The file is read
            when first asked about, and only while it holds the recorded
            content.

        Raises
        ------
        TypeError
            If ``concept_key`` is not a non-empty string.
        ImportError
            If geopandas / pyogrio are missing: ``pip install 'consist[spatial]'``.

        Example
        -------
        >>> view = tracker.spatial_metadata("parcels")
        >>> bounds = view.get_bounds("parcels")
        """
        from consist.core.drivers.spatial import require

        if not isinstance(concept_key, str) or not concept_key:
            raise TypeError(f"concept_key must be a non-empty string, got {concept_key!r}")
        require("spatial_metadata")

        def lookup(key: str, run_id: str | None) -> Artifact | None:
            return self.get_artifact(key, run_id=run_id)  # type: ignore[attr-defined]

        def verify(path: str, digest: str) -> bool:
            return self.hasher.verify_many([(path, digest)])[0]  # type: ignore[attr-defined]

        return SpatialMetadataView(concept_key, lookup, verify)

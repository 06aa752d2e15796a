"""Spatial layers: GeoPackage, GeoJSON, Shapefile bundles and GeoParquet.

Real files are written with geopandas, logged as run outputs, and the
metadata view is checked against what the test computes from the
GeoDataFrames it wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import consist
from consist import Tracker

gpd = pytest.importorskip("geopandas")
pyproj = pytest.importorskip("pyproj")
shapely_geometry = pytest.importorskip("shapely.geometry")
Point = shapely_geometry.Point
Polygon = shapely_geometry.Polygon
LineString = shapely_geometry.LineString


def _parcels() -> object:
    polys = [
        Polygon([(0, 0), (2, 0), (2, 3), (0, 3)]),
        Polygon([(5, 5), (9, 5), (9, 7)]),
        Polygon([(-4, 1), (-1, 1), (-1, 2), (-4, 2)]),
    ]
    return gpd.GeoDataFrame(
        {"parcel_id": [1, 2, 3], "zone": ["a", "b", "a"]}, geometry=polys, crs="EPSG:26910"
    )


def _stops() -> object:
    return gpd.GeoDataFrame(
        {"stop": ["x", "y"], "riders": [10, 20]},
        geometry=[Point(-122.4, 37.7), Point(-122.2, 37.9)],
        crs="EPSG:4326",
    )


def _mixed() -> object:
    return gpd.GeoDataFrame(
        {"name": ["p", "l"]},
        geometry=[Point(1.5, 2.5), LineString([(0, 0), (3, 4)])],
        crs="EPSG:4326",
    )


def _bounds(gdf: object) -> tuple[float, ...]:
    return tuple(float(v) for v in gdf.total_bounds)


def _types(gdf: object) -> list[str]:
    return sorted(set(gdf.geom_type))


def test_geopackage_layers_described_and_loaded(tracker: Tracker, base: Path) -> None:
    parcels, stops = _parcels(), _stops()
    path = base / "city.gpkg"
    parcels.to_file(path, layer="parcels", driver="GPKG")
    stops.to_file(path, layer="stops", driver="GPKG")
    with tracker.start_run("gpkg_1", "gis"):
        art = tracker.log_artifact(path, key="city")
    assert art.driver == "geopackage"

    view = tracker.spatial_metadata("city")
    assert view.get_layers() == ["parcels", "stops"]
    assert view.get_bounds("city", layer="parcels") == pytest.approx(_bounds(parcels))
    assert view.get_bounds(layer="stops") == pytest.approx(_bounds(stops))
    assert view.get_epsg(layer="parcels") == 26910
    assert view.get_epsg(layer="stops") == 4326
    assert view.get_crs() is None  # the layers do not share a CRS
    assert view.get_geometry_types(layer="parcels") == _types(parcels)
    assert view.get_geometry_types() == sorted(set(_types(parcels)) | set(_types(stops)))
    assert view.get_feature_counts() == {"parcels": len(parcels), "stops": len(stops)}
    assert view.get_feature_count() == len(parcels) + len(stops)
    assert "stops: 2 features" in view.summary()
    wkt = view.get_crs(layer="parcels")["wkt"]
    assert pyproj.CRS.from_wkt(wkt) == parcels.crs
    with pytest.raises(KeyError, match="'roads'"):
        view.get_bounds(layer="roads")

    with pytest.raises(ValueError, match="layer="):
        tracker.load(art)
    loaded = tracker.load(art, layer="stops")
    assert isinstance(loaded, gpd.GeoDataFrame)
    assert list(loaded["stop"]) == ["x", "y"]
    assert loaded.crs.to_epsg() == 4326
    only = consist.load(art, layer="parcels", columns=["zone"])
    assert list(only.columns) == ["zone", "geometry"]
    assert only.geometry.equals(parcels.geometry)
    frame = tracker.load_df(art, layer="parcels")
    assert isinstance(frame, gpd.GeoDataFrame) and list(frame["parcel_id"]) == [1, 2, 3]
    with pytest.raises(KeyError, match="nope"):
        tracker.load(art, layer="parcels", columns=["nope"])


def test_geojson_mixed_types(tracker: Tracker, base: Path) -> None:
    mixed = _mixed()
    path = base / "features.geojson"
    mixed.to_file(path, driver="GeoJSON")
    with tracker.start_run("gj_1", "gis"):
        art = tracker.log_artifact(path, key="features")
    view = tracker.spatial_metadata("features")
    assert art.driver == "geojson"
    assert view.get_bounds() == pytest.approx(_bounds(mixed))
    assert view.get_geometry_types() == ["LineString", "Point"] == _types(mixed)
    assert view.get_feature_count() == 2
    assert view.get_epsg() == 4326
    loaded = tracker.load(art)
    assert isinstance(loaded, gpd.GeoDataFrame) and list(loaded["name"]) == ["p", "l"]


def test_geoparquet_described_and_loaded(tracker: Tracker, base: Path) -> None:
    parcels = _parcels()
    path = base / "parcels.geoparquet"
    parcels.to_parquet(path)
    with tracker.start_run("gp_1", "gis"):
        art = tracker.log_artifact(path, key="parcels")
    assert art.driver == "geoparquet"
    view = tracker.spatial_metadata("parcels")
    assert view.get_bounds("parcels") == pytest.approx(_bounds(parcels))
    assert view.get_epsg() == 26910
    assert view.get_geometry_types() == _types(parcels)
    assert view.get_feature_count() == 3
    assert view.get_layers() == ["parcels"]
    loaded = tracker.load(art, columns=["zone"])
    assert isinstance(loaded, gpd.GeoDataFrame)
    assert list(loaded.columns) == ["zone", "geometry"]
    assert loaded.crs.to_epsg() == 26910


def test_shapefile_bundle_hash_covers_sidecars(tracker: Tracker, base: Path) -> None:
    parcels = _parcels()
    folder = base / "shp"
    folder.mkdir()
    path = folder / "parcels.shp"
    parcels.to_file(path)
    (folder / "other.dbf").write_bytes(b"not part of the bundle")
    with tracker.start_run("shp_1", "gis"):
        first = tracker.log_artifact(path, key="parcels_shp")
    assert first.driver == "shapefile"
    view = tracker.spatial_metadata("parcels_shp")
    described = view.describe()
    assert {".shp", ".shx", ".dbf", ".prj"} <= set(described["bundle"])
    assert ".dbf" in described["bundle"] and "other.dbf" not in str(described["bundle"])
    assert view.get_bounds() == pytest.approx(_bounds(parcels))
    assert view.get_epsg() == 26910
    assert view.get_feature_count() == 3
    assert view.get_geometry_types() == _types(parcels)
    loaded = tracker.load(first)
    assert isinstance(loaded, gpd.GeoDataFrame) and list(loaded["zone"]) == ["a", "b", "a"]

    assert tracker.hasher.verify_many([(path, first.hash)], trust_stat=False) == [True]
    assert tracker.hasher.verify_many([(path, first.hash)]) == [True]

    # Only the attributes (.dbf) change: the .shp bytes are identical.
    shp_before = path.read_bytes()
    edited = parcels.copy()
    edited["zone"] = ["c", "c", "c"]
    edited.to_file(path)
    assert path.read_bytes() == shp_before
    # Checking a recorded output (as a cache hit does) sees the .dbf edit.
    assert tracker.hasher.verify_many([(path, first.hash)]) == [False]
    assert tracker.hasher.verify_many([(path, first.hash)], trust_stat=False) == [False]
    with tracker.start_run("shp_2", "gis"):
        second = tracker.log_artifact(path, key="parcels_shp")
    assert second.hash != first.hash

    # An unrelated file beside the bundle does not count.
    (folder / "other.dbf").write_bytes(b"changed")
    with tracker.start_run("shp_3", "gis"):
        third = tracker.log_artifact(path, key="parcels_shp")
    assert third.hash == second.hash

    # The first run's artifact no longer matches the file: its view refuses.
    with pytest.raises(ValueError, match="no longer holds"):
        tracker.spatial_metadata("parcels_shp").get_bounds(run_id="shp_1")
    assert tracker.spatial_metadata("parcels_shp").get_feature_count(run_id="shp_2") == 3


def test_bad_arguments(tracker: Tracker, base: Path) -> None:
    with pytest.raises(TypeError, match="concept_key"):
        tracker.spatial_metadata("")
    table = base / "t.csv"
    table.write_text("a\n1\n")
    with tracker.start_run("csv_1", "m"):
        tracker.log_artifact(table, key="table")
    with pytest.raises(ValueError, match="not a spatial layer"):
        tracker.spatial_metadata("table").get_bounds()
    with pytest.raises(KeyError, match="no artifact"):
        tracker.spatial_metadata("nothing").get_bounds()


def test_missing_library_names_the_extra(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stops = _stops()
    path = base / "stops.geojson"
    stops.to_file(path, driver="GeoJSON")
    with tracker.start_run("gj_2", "gis"):
        art = tracker.log_artifact(path, key="stops")
    monkeypatch.setitem(sys.modules, "geopandas", None)
    with pytest.raises(ImportError, match=r"consist\[spatial\]"):
        tracker.spatial_metadata("stops")
    with pytest.raises(ImportError, match=r"consist\[spatial\]"):
        tracker.load(art)


def test_cached_shapefile_output_is_verified_as_a_bundle(tracker: Tracker, base: Path) -> None:
    calls: list[int] = []
    path = tracker.run_dir / "gis" / "parcels.shp"

    def write_parcels(out: Path) -> None:
        calls.append(1)
        out.parent.mkdir(parents=True, exist_ok=True)
        _parcels().to_file(out)

    kwargs = {"runtime_kwargs": {"out": path}, "output_paths": {"parcels": path}}
    first = tracker.run(write_parcels, **kwargs)
    assert not first.cache_hit and first.outputs["parcels"].driver == "shapefile"
    hit = tracker.run(write_parcels, **kwargs)
    assert hit.cache_hit and len(calls) == 1  # the intact bundle verifies

    edited = _parcels()
    edited["zone"] = ["z", "z", "z"]
    edited.to_file(path)  # only the .dbf differs
    again = tracker.run(write_parcels, **kwargs)
    assert not again.cache_hit and len(calls) == 2


def test_description_recorded_at_log_time_serves_without_the_file(
    tracker: Tracker, base: Path
) -> None:
    from consist.core.drivers.spatial import describe

    stops = _stops()
    path = base / "stops.geojson"
    stops.to_file(path, driver="GeoJSON")
    with tracker.start_run("gj_3", "gis"):
        tracker.log_artifact(path, key="stops", spatial=describe(path, "geojson"))
    path.unlink()
    view = tracker.spatial_metadata("stops")
    assert view.get_bounds() == pytest.approx(_bounds(stops))
    assert view.get_feature_count() == 2
    assert view.get_epsg() == 4326
    with tracker.start_run("gj_4", "gis"):
        stops.to_file(base / "gone.geojson", driver="GeoJSON")
        tracker.log_artifact(base / "gone.geojson", key="gone")
    (base / "gone.geojson").unlink()
    with pytest.raises(FileNotFoundError, match="restore its file"):
        tracker.spatial_metadata("gone").get_bounds()
    with pytest.raises(ValueError, match="not a spatial driver"):
        describe(base / "x.csv", "csv")


@pytest.mark.parametrize("strategy", ["full", "fast"])
def test_bundle_digest_and_verify_agree(base: Path, strategy: str) -> None:
    from consist.core.identity.hashing import ContentHasher, hash_file, shapefile_bundle

    path = base / "Roads.shp"
    _parcels().to_file(path)
    names = sorted(Path(p).name for p in shapefile_bundle(path))
    assert names == sorted(p.name for p in base.iterdir() if p.stem == "Roads")
    hasher = ContentHasher(strategy=strategy)
    digest = hasher.digest(path)
    assert digest != hash_file(path)  # not the .shp alone
    assert hasher.verify_many([(path, digest)]) == [True]
    dbf = base / "Roads.dbf"
    dbf.write_bytes(dbf.read_bytes() + b"\0")
    assert hasher.verify_many([(path, digest)]) == [False]
    assert hasher.digest(path) != digest

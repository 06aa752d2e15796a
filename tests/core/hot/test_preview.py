"""``consist.core.hot.preview.first_rows`` on what ``Tracker.load`` returns for real files:
a DuckDB relation (parquet), a DataFrame (an HDF5 table), an xarray Dataset (netCDF) and
a GeoDataFrame (GeoJSON); a whole HDF5 container has no rows."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import Point

from consist import Tracker
from consist.core.hot.preview import first_rows


@pytest.fixture
def loaded(tmp_path: Path):
    """Each artifact's loaded object, by key, from a real store under ``tmp_path``."""
    pd.DataFrame({"hh": [1, 2, 3], "size": [2.0, None, 4.0]}).to_parquet(tmp_path / "hh.parquet")
    pd.DataFrame({"hh": [1, 2, 3, 4], "size": [2.0, np.nan, 4.0, 3.0]}).to_hdf(
        tmp_path / "pipeline.h5", key="households", format="table", mode="w"
    )
    xr.Dataset(
        {"temp": (("time",), np.array([10.5, 11.0, 12.5]))}, coords={"time": [0, 1, 2]}
    ).to_netcdf(tmp_path / "climate.nc")
    gpd.GeoDataFrame(
        {"zone": [7, 8]}, geometry=[Point(1, 2), Point(3, 4)], crs="EPSG:4326"
    ).to_file(tmp_path / "zones.geojson", driver="GeoJSON")
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb", project_root=tmp_path)
    try:
        with tracker.start_run("r1", "model"):
            tracker.log_artifact(tmp_path / "hh.parquet", key="hh")
            tracker.log_h5_container(tmp_path / "pipeline.h5", key="pipeline")
            tracker.log_netcdf_file(tmp_path / "climate.nc", key="climate")
            tracker.log_artifact(tmp_path / "zones.geojson", key="zones")
        keys = ("hh", "pipeline/households", "climate", "zones", "pipeline")
        found = {}
        for key in keys:
            artifact = tracker.get_artifact(key)
            assert artifact is not None, key
            found[key] = tracker.load(artifact)
        yield found
    finally:
        tracker.close()


def test_a_relation_keeps_duckdb_types_and_nulls(loaded) -> None:
    columns, types, values = first_rows(loaded["hh"], 2)
    assert columns == ["hh", "size"] and types == ["BIGINT", "DOUBLE"]
    assert values == [[1, 2.0], [2, None]]


def test_a_dataframe_has_none_for_missing_values(loaded) -> None:
    columns, types, values = first_rows(loaded["pipeline/households"], 3)
    assert columns == ["hh", "size"] and types == ["int64", "float64"]
    assert values == [[1, 2.0], [2, None], [3, 4.0]]


@pytest.mark.filterwarnings("ignore:Geometry column does not contain geometry")
def test_a_dataset_flattens_to_rows_and_a_layer_gives_wkt(loaded) -> None:
    columns, _, values = first_rows(loaded["climate"], 2)
    assert columns == ["time", "temp"] and values == [[0, 10.5], [1, 11.0]]
    frame = loaded["zones"]
    columns, types, values = first_rows(frame, 5)
    assert values == [[7, "POINT (1 2)"], [8, "POINT (3 4)"]]
    assert types[columns.index("geometry")] in ("object", "str")  # text, as per pandas
    assert str(frame["geometry"].dtype) == "geometry"  # the loaded frame is left as it was


def test_what_has_no_rows_is_a_type_error(loaded) -> None:
    with pytest.raises(TypeError, match="which has no rows"):
        first_rows(loaded["pipeline"], 2)
    with pytest.raises(TypeError, match="ndarray"):
        first_rows(np.arange(3), 2)

"""``consist preview`` on artifacts whose natural object is not a DuckDB relation."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from shapely.geometry import Point

from consist import Tracker


def _store(base: Path) -> Path:
    tracker = Tracker(base / "runs", db_path=base / "provenance.duckdb", project_root=base)
    pd.DataFrame({"hh": [1, 2, 3, 4], "size": [2.0, 1.0, 4.0, 3.0]}).to_hdf(
        base / "pipeline.h5", key="households", format="table", mode="w"
    )
    xr.Dataset(
        {"temp": (("time",), np.array([10.5, 11.0, 12.5]))}, coords={"time": [0, 1, 2]}
    ).to_netcdf(base / "climate.nc")
    gpd.GeoDataFrame(
        {"zone": [7, 8]}, geometry=[Point(1, 2), Point(3, 4)], crs="EPSG:4326"
    ).to_file(base / "zones.geojson", driver="GeoJSON")
    with tracker.start_run("r1", "model"):
        tracker.log_h5_container(base / "pipeline.h5", key="pipeline")
        tracker.log_netcdf_file(base / "climate.nc", key="climate")
        tracker.log_artifact(base / "zones.geojson", key="zones")
    tracker.close()
    return base / "provenance.duckdb"


def test_preview_hdf5_table_netcdf_and_a_layer(cli, tmp_path: Path) -> None:
    db = str(_store(tmp_path))
    table = cli("preview", "pipeline/households", "--rows", "2", "--db-path", db, "--json")
    assert table.code == 0, table.stderr
    assert table.json()["columns"] == ["hh", "size"]
    assert table.json()["rows"] == [[1, 2.0], [2, 1.0]]

    grid = cli("preview", "climate", "--db-path", db, "--json").json()
    assert grid["columns"] == ["time", "temp"] and grid["rows"][2] == [2, 12.5]

    layer = cli("preview", "zones", "--db-path", db, "--json").json()
    assert layer["rows"] == [[7, "POINT (1 2)"], [8, "POINT (3 4)"]]

    container = cli("preview", "pipeline", "--db-path", db)
    assert container.code == 1 and "no row form" in container.stderr

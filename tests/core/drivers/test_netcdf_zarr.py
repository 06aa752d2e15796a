"""NetCDF files, Zarr stores, load_matrix and steps returning xarray objects.

Every file is written with xarray (h5netcdf / netCDF4 / zarr) in ``tmp_path``
and goes through the public Tracker API.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")
pytest.importorskip("h5netcdf")

import consist  # noqa: E402
from consist import Tracker  # noqa: E402
from consist.core.drivers import zarr as zarr_driver  # noqa: E402


def _climate(offset: float = 0.0) -> xr.Dataset:
    return xr.Dataset(
        {
            "temp": (("time", "lat"), np.arange(6.0).reshape(3, 2) + offset, {"units": "K"}),
            "rain": (("time",), np.array([0.5, 0.0, 1.25]) + offset, {"units": "mm"}),
        },
        coords={"time": [0, 1, 2], "lat": [10.0, 20.0]},
        attrs={"title": "demo grid", "version": 2},
    )


def _write_zarr(ds: xr.Dataset, path: Path, chunks: tuple[int, int] = (2, 2)) -> Path:
    ds.to_zarr(path, mode="w", consolidated=False, encoding={"flow": {"chunks": chunks}})
    return path


def _skim(scale: float = 1.0) -> xr.Dataset:
    return xr.Dataset(
        {
            "flow": (("o", "d"), np.arange(16.0).reshape(4, 4) * scale),
            "time": (("o", "d"), np.ones((4, 4)) * scale),
        },
        coords={"o": np.arange(4), "d": np.arange(4)},
    )


# --------------------------------------------------------------------------- NetCDF


def test_log_netcdf_file_records_structure_as_meta_and_indexed_facet(
    tracker: Tracker, base: Path
) -> None:
    path = base / "climate.nc"
    _climate().to_netcdf(path, engine="h5netcdf")
    with tracker.start_run("r1", "clim", year=2024):
        art = tracker.log_netcdf_file(path, key="climate", source="era5")
    assert art.driver == "netcdf" and art.key == "climate" and art.meta["source"] == "era5"
    structure = art.meta["netcdf"]
    variables = {v["name"]: v for v in structure["variables"]}
    assert variables["temp"] == {
        "name": "temp",
        "dims": ["time", "lat"],
        "dtype": "float64",
        "shape": [3, 2],
        "attributes": {"units": "K"},
        "is_coordinate": False,
    }
    assert variables["time"]["is_coordinate"] and variables["lat"]["dtype"] == "float64"
    assert structure["dimensions"] == {"time": 3, "lat": 2}
    assert sorted(structure["coordinates"]) == ["lat", "time"]
    assert structure["attributes"] == {"title": "demo grid", "version": 2}

    # Stored and read back from the catalog, and key/value indexed as a facet.
    stored = tracker.find_artifacts(key="climate")[0]
    assert stored.meta["netcdf"] == structure
    assert tracker.store is not None
    facets = tracker.store.facets
    hits = facets.find_artifacts_by_kv(key="dimensions.time", value_num=3)
    assert [a.id for a in hits] == [art.id]
    assert facets.find_artifacts_by_kv(key="dimensions.time", value_num=4) == []
    by_dtype = facets.find_artifacts_by_kv(key="variables.temp.dims", value_str="time,lat")
    assert [a.id for a in by_dtype] == [art.id]


def test_log_netcdf_file_defaults_key_and_refuses_bad_input(tracker: Tracker, base: Path) -> None:
    path = base / "ocean.nc"
    _climate().to_netcdf(path, engine="netcdf4")
    with pytest.raises(RuntimeError, match="log_netcdf_file needs an active run"):
        tracker.log_netcdf_file(path)
    bogus = base / "bogus.nc"
    bogus.write_text("not netcdf")
    with tracker.start_run("r1", "clim"):
        assert tracker.log_netcdf_file(path).key == "ocean"
        dotted = base / "ocean.v2.nc"
        _climate().to_netcdf(dotted)
        assert tracker.log_netcdf_file(dotted, direction="input").key == "ocean.v2"
        with pytest.raises(FileNotFoundError, match=r"missing\.nc"):
            tracker.log_netcdf_file(base / "missing.nc")
        with pytest.raises(ValueError, match="could not be read as NetCDF"):
            tracker.log_netcdf_file(bogus, key="bogus")
        with pytest.raises(ValueError, match="direction"):
            tracker.log_netcdf_file(path, direction="sideways")
        with pytest.raises(ValueError, match="facet"):
            tracker.log_netcdf_file(path, key="x", facet={"a": 1})
    assert sorted(a.key for a in tracker.find_artifacts()) == ["ocean", "ocean.v2"]


def test_netcdf_metadata_view_across_runs_by_year(tracker: Tracker, base: Path) -> None:
    for year, extra in ((2020, False), (2024, True)):
        ds = _climate()
        if extra:
            ds["wind"] = (("time",), np.zeros(3, dtype="float32"))
        path = base / f"climate_{year}.nc"
        ds.to_netcdf(path)
        with tracker.start_run(f"r{year}", "clim", year=year):
            tracker.log_netcdf_file(path, key="climate")

    view = tracker.netcdf_metadata("climate")
    variables = view.get_variables(year=2024)
    assert isinstance(variables, pd.DataFrame)
    assert set(variables["run_id"]) == {"r2024"} and set(variables["year"]) == {2024}
    assert sorted(variables["variable"]) == ["lat", "rain", "temp", "time", "wind"]
    wind = variables.set_index("variable").loc["wind"]
    assert wind["dims"] == ("time",) and wind["dtype"] == "float32" and wind["shape"] == (3,)
    assert sorted(view.get_variables(year=2020)["variable"]) == ["lat", "rain", "temp", "time"]
    assert view.get_variables(year=1999).empty

    dims = view.get_dimensions()
    assert sorted(zip(dims["run_id"], dims["dimension"], dims["size"], strict=True)) == [
        ("r2020", "lat", 2),
        ("r2020", "time", 3),
        ("r2024", "lat", 2),
        ("r2024", "time", 3),
    ]
    attrs = view.get_attributes(year=2020)
    assert dict(zip(attrs["attribute"], attrs["value"], strict=True)) == {
        "title": "demo grid",
        "version": 2,
    }
    units = view.get_attributes(year=2024, variable="temp")
    assert list(units["value"]) == ["K"] and list(units["variable"]) == ["temp"]

    text = view.summary("climate")
    assert "2 artifact(s)" in text and "[2020, 2024]" in text and "temp(time, lat)" in text
    assert view.summary() == text
    with pytest.raises(ValueError, match="netcdf_metadata\\('other'\\)"):
        view.summary("other")
    assert "no artifacts" in tracker.netcdf_metadata("nothing").summary()


def test_load_netcdf_returns_dataset_with_variable_selection(tracker: Tracker, base: Path) -> None:
    path = base / "climate.nc"
    _climate().to_netcdf(path)
    with tracker.start_run("r1", "clim"):
        art = tracker.log_netcdf_file(path, key="climate")
    ds = tracker.load(art)
    assert isinstance(ds, xr.Dataset)
    xr.testing.assert_identical(ds.load(), _climate())
    ds.close()
    only = consist.load(art, columns=["rain"])
    assert list(only.data_vars) == ["rain"] and "time" in only.coords
    only.close()
    frame = tracker.load_df(art, columns=["temp"])
    assert list(frame.columns) == ["time", "lat", "temp"] and len(frame) == 6
    with pytest.raises(KeyError, match="snow"):
        tracker.load(art, columns=["snow"])


# --------------------------------------------------------------------------- Zarr


def _digest(tracker: Tracker, store: Path, run_id: str) -> str:
    with tracker.start_run(run_id, "skims"):
        art = tracker.log_artifact(store, key="skim")
    assert art.driver == "zarr" and art.hash is not None
    return art.hash


def test_zarr_digest_follows_chunks(tracker: Tracker, base: Path) -> None:
    store = _write_zarr(_skim(), base / "skim.zarr")
    chunk_files = sorted(p for p in (store / "flow").rglob("*") if p.is_file() and "c" in p.parts)
    assert len(chunk_files) == 4  # a 4x4 array in 2x2 chunks
    before = {p: p.read_bytes() for p in chunk_files}
    first = _digest(tracker, store, "a")

    # Touching files and rewriting identical values leave the digest alone.
    for p in chunk_files:
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    assert _digest(tracker, store, "b") == first
    _skim().isel(o=slice(0, 2), d=slice(0, 2))[["flow"]].drop_vars(["o", "d"]).to_zarr(
        store, region={"o": slice(0, 2), "d": slice(0, 2)}, consolidated=False
    )
    assert _digest(tracker, store, "c") == first

    # A copy elsewhere hashes alike (relative paths, not locations).
    copy = _write_zarr(_skim(), base / "elsewhere" / "skim.zarr")
    assert _digest(tracker, copy, "d") == first

    # Changing one chunk changes exactly one file and the digest.
    changed = _skim().isel(o=slice(2, 4), d=slice(0, 2))[["flow"]].drop_vars(["o", "d"]) + 100
    changed.to_zarr(store, region={"o": slice(2, 4), "d": slice(0, 2)}, consolidated=False)
    differing = [p for p in chunk_files if p.read_bytes() != before[p]]
    assert len(differing) == 1
    second = _digest(tracker, store, "e")
    assert second != first
    loaded = tracker.load(tracker.get_run_outputs("e")["skim"])
    assert float(loaded["flow"].sel(o=2, d=0)) == 108.0
    loaded.close()


def test_load_zarr_returns_dataset(tracker: Tracker, base: Path) -> None:
    store = _write_zarr(_skim(), base / "skim.zarr")
    with tracker.start_run("r1", "skims"):
        art = tracker.log_artifact(store, key="skim")
    ds = tracker.load(art)
    assert isinstance(ds, xr.Dataset)
    xr.testing.assert_identical(ds.load(), _skim())
    ds.close()
    flow = tracker.load(art, columns=["flow"])
    assert list(flow.data_vars) == ["flow"]
    flow.close()
    with pytest.raises(KeyError, match="'cost'"):
        tracker.load(art, columns=["cost"])


# --------------------------------------------------------------------------- load_matrix


def _three_runs(tracker: Tracker, base: Path, fmt: str) -> list[str]:
    ids = []
    for i, year in enumerate((2030, 2020, 2025)):
        run_id = f"{fmt}{year}"
        with tracker.start_run(run_id, "skims", year=year, iteration=i, parent_run_id="scen"):
            if fmt == "zarr":
                store = _write_zarr(_skim(scale=year), base / run_id / "skim.zarr")
                tracker.log_artifact(store, key="skim")
            else:
                path = base / f"{run_id}.nc"
                _skim(scale=year).to_netcdf(path)
                tracker.log_netcdf_file(path, key="skim")
        ids.append(run_id)
    return ids


@pytest.mark.parametrize("fmt", ["zarr", "netcdf"])
def test_load_matrix_across_three_runs(tracker: Tracker, base: Path, fmt: str) -> None:
    _three_runs(tracker, base, fmt)
    with tracker.start_run("other", "assign", year=2020):
        pass  # a run without the key is skipped
    matrix = tracker.load_matrix("skim", ["flow"], parent_id="scen")
    assert isinstance(matrix, xr.Dataset)
    assert matrix["flow"].dims == ("run_id", "o", "d")
    assert list(matrix["run_id"].values) == [f"{fmt}2020", f"{fmt}2025", f"{fmt}2030"]
    assert list(matrix["year"].values) == [2020, 2025, 2030]
    assert list(matrix["iteration"].values) == [1, 2, 0]
    assert list(matrix.data_vars) == ["flow"]
    for year in (2020, 2025, 2030):
        np.testing.assert_array_equal(
            matrix["flow"].sel(run_id=f"{fmt}{year}").values, np.arange(16.0).reshape(4, 4) * year
        )
    both = tracker.load_matrix("skim", model="skims")
    assert sorted(both.data_vars) == ["flow", "time"] and both.sizes["run_id"] == 3
    picked = tracker.load_matrix("skim", run_ids=[f"{fmt}2030", f"{fmt}2020"])
    assert list(picked["year"].values) == [2030, 2020]


def test_load_matrix_errors(tracker: Tracker, base: Path) -> None:
    _three_runs(tracker, base, "zarr")
    with pytest.raises(KeyError, match="'nope'"):
        tracker.load_matrix("nope")
    with pytest.raises(KeyError, match=r"'skim'.*model"):
        tracker.load_matrix("skim", model="beam")
    with pytest.raises(KeyError, match="'ghost'"):
        tracker.load_matrix("skim", run_ids=["ghost"])
    with pytest.raises(KeyError, match="'cost'"):
        tracker.load_matrix("skim", ["cost"])
    with pytest.raises(TypeError, match="variables"):
        tracker.load_matrix("skim", "flow")
    with pytest.raises(TypeError, match="run_ids"):
        tracker.load_matrix("skim", run_ids="zarr2020")
    csv = base / "t.csv"
    csv.write_text("a\n1\n")
    with tracker.start_run("csvrun", "skims"):
        tracker.log_artifact(csv, key="table")
    with pytest.raises(ValueError, match="'csv' artifact"):
        tracker.load_matrix("table")


# --------------------------------------------------------------------------- xarray returns


def make_grid() -> xr.Dataset:
    return _climate(offset=1.0)


def make_array() -> xr.DataArray:
    return _climate()["temp"].rename(None)


def test_step_returning_dataset_is_logged_and_hits(tracker: Tracker) -> None:
    first = tracker.run(make_grid, outputs=["grid"], year=2024)
    art = first.output("grid")
    assert not first.cache_hit and art.driver == "netcdf" and art.uri.endswith("grid.nc")
    assert art.meta["netcdf"]["dimensions"] == {"time": 3, "lat": 2}
    again = tracker.run(make_grid, outputs=["grid"], year=2024)
    assert again.cache_hit
    loaded = tracker.load(again.output("grid"))
    xr.testing.assert_identical(loaded.load(), make_grid())
    loaded.close()
    view = tracker.netcdf_metadata("grid").get_variables(year=2024)
    assert "temp" in set(view["variable"])


def test_step_returning_dataarray_uses_output_key_as_name(tracker: Tracker) -> None:
    art = tracker.run(make_array, outputs=["temperature"]).output("temperature")
    loaded = tracker.load(art)
    assert list(loaded.data_vars) == ["temperature"]
    loaded.close()


def test_large_returned_dataset_is_written_as_zarr(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zarr_driver, "ZARR_THRESHOLD_BYTES", 64)  # _climate() holds 112 bytes
    art = tracker.run(make_grid, outputs=["grid"]).output("grid")
    assert art.driver == "zarr" and art.uri.endswith("grid.zarr")
    assert art.meta["zarr"]["dimensions"] == {"time": 3, "lat": 2}
    loaded = tracker.load(art)
    xr.testing.assert_identical(loaded.load(), make_grid())
    loaded.close()
    again = tracker.run(make_grid, outputs=["grid"])
    assert again.cache_hit
    hit = tracker.load(again.output("grid"))
    xr.testing.assert_identical(hit.load(), make_grid())
    hit.close()
    matrix = tracker.load_matrix("grid", ["temp"])
    assert matrix.sizes["run_id"] == 2


# --------------------------------------------------------------------------- missing library


def test_missing_xarray_raises_import_error_naming_the_extra(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = base / "climate.nc"
    _climate().to_netcdf(path)
    with tracker.start_run("r1", "clim"):
        art = tracker.log_netcdf_file(path, key="climate")
    monkeypatch.setitem(sys.modules, "xarray", None)
    with (
        tracker.start_run("r2", "clim"),
        pytest.raises(ImportError, match=r"pip install 'consist\[netcdf\]'"),
    ):
        tracker.log_netcdf_file(path, key="again")
    with pytest.raises(ImportError, match=r"consist\[netcdf\]"):
        tracker.load(art)
    with pytest.raises(ImportError, match=r"load_matrix needs xarray"):
        tracker.load_matrix("climate")
    assert tracker.get_run_outputs("r2") == {}

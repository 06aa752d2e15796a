"""OpenMatrix (OMX) files: logged with their structure, viewed across runs,
compared cell by cell, loaded as xarray Datasets.

Every file is a real OMX file written with the ``openmatrix`` package in
``tmp_path``; every expected figure is computed here from the arrays the
test wrote.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from consist import Tracker

openmatrix = pytest.importorskip("openmatrix")
xr = pytest.importorskip("xarray")

ZONES = np.array([101, 102, 103, 104, 105])


def _demand(year: int) -> dict[str, np.ndarray]:
    """Matrices of one year: a base and what changes by 2030."""
    rng = np.random.default_rng(7)
    sov = rng.integers(0, 50, size=(5, 5)).astype("float64")
    hov = rng.integers(0, 10, size=(5, 5)).astype("float32")
    if year == 2030:
        sov = sov.copy()
        sov[0, 1] += 0.25  # small changes (under a 0.5 tolerance)
        sov[2, 2] -= 0.25
        sov[4, 0] += 0.25
        sov[1, 3] += 3.0  # large changes
        sov[3, 4] -= 7.0
        sov[4, 4] += 12.0
        sov[0, 0] += 1.0
        hov = hov * 2
    return {"SOV": sov, "HOV": hov}


def _write_omx(
    path: Path,
    matrices: dict[str, np.ndarray],
    zones: np.ndarray = ZONES,
    scenario: str = "base",
) -> Path:
    f = openmatrix.open_file(str(path), "w")
    try:
        for name, values in matrices.items():
            if name == "SOV":
                f.create_matrix(
                    name, obj=values, title="drive alone", attrs={"units": "trips", "period": 3}
                )
            else:
                f[name] = values
        f.create_mapping("TAZ", zones)
        f.create_mapping("DISTRICT", np.arange(len(zones)) // 2)
        f.root._v_attrs["scenario"] = scenario
        f.root._v_attrs["model_year"] = int(path.stem.split("_")[-1])
    finally:
        f.close()
    return path


@pytest.fixture
def two_years(tracker: Tracker, base: Path) -> dict[int, tuple[Path, dict[str, np.ndarray]]]:
    """Runs ``y2024`` and ``y2030`` each log their demand.omx under key ``demand``."""
    written = {}
    for year, scenario in ((2024, "base"), (2030, "build")):
        data = _demand(year)
        path = _write_omx(base / f"demand_{year}.omx", data, scenario=scenario)
        with tracker.start_run(f"y{year}", "asim", year=year):
            tracker.log_openmatrix_file(path, key="demand", purpose="test")
        written[year] = (path, data)
    return written


# --------------------------------------------------------------------------- #
# log_openmatrix_file
# --------------------------------------------------------------------------- #
def test_logged_structure_is_recorded_on_the_artifact(tracker: Tracker, two_years) -> None:
    for year, (_path, data) in two_years.items():
        art = tracker.get_run_outputs(f"y{year}")["demand"]
        assert art.driver == "openmatrix"
        assert art.meta["purpose"] == "test"
        desc = art.meta["openmatrix"]
        assert desc["matrix_count"] == len(data)
        assert sorted(desc["matrices"]) == sorted(data)
        for name, values in data.items():
            info = desc["matrices"][name]
            assert (info["rows"], info["cols"]) == values.shape
            assert info["dtype"] == str(values.dtype)
        assert desc["matrices"]["SOV"]["title"] == "drive alone"
        assert desc["matrices"]["SOV"]["attributes"] == {"units": "trips", "period": 3}
        assert "attributes" not in desc["matrices"]["HOV"]
        assert desc["shape"] == list(data["SOV"].shape)
        assert desc["zone_count"] == len(ZONES)
        assert desc["mappings"]["TAZ"]["length"] == len(ZONES)
        assert desc["mappings"]["DISTRICT"]["length"] == len(ZONES)
        assert desc["mapping_count"] == 2
        # User attributes only: no PyTables bookkeeping, no OMX format attributes.
        assert desc["attributes"] == {
            "model_year": year,
            "scenario": "base" if year == 2024 else "build",
        }
        assert desc["omx_version"]
        # The artifact's facet is the same structure.
        assert art.meta["facet"] == desc


def test_file_is_hashed_by_content(tracker: Tracker, two_years, base: Path) -> None:
    hashes = {y: tracker.get_run_outputs(f"y{y}")["demand"].hash for y in two_years}
    assert hashes[2024] != hashes[2030]
    copy = base / "copy_of_2024.omx"
    shutil.copyfile(two_years[2024][0], copy)
    with tracker.start_run("again", "asim", year=2024):
        again = tracker.log_openmatrix_file(copy, key="copy")
        plain = tracker.log_artifact(two_years[2030][0], key="plain")
    assert again.hash == hashes[2024]
    assert plain.hash == hashes[2030]


def test_structure_is_key_value_indexed(tracker: Tracker, two_years) -> None:
    ids = {str(tracker.get_run_outputs(f"y{y}")["demand"].id) for y in two_years}
    facets = tracker.store.facets
    by_zones = facets.find_artifacts_by_kv(key="zone_count", value_num=len(ZONES))
    assert {str(a.id) for a in by_zones} == ids
    by_rows = facets.find_artifacts_by_kv(key="matrices.SOV.rows", value_num=5)
    assert {str(a.id) for a in by_rows} == ids
    build = facets.find_artifacts_by_kv(key="attributes.scenario", value_str="build")
    assert [str(a.id) for a in build] == [str(tracker.get_run_outputs("y2030")["demand"].id)]
    assert facets.find_artifacts_by_kv(key="mappings.TAZ.length", value_num=6) == []


def test_key_defaults_to_the_file_stem_and_input_direction(tracker: Tracker, base: Path) -> None:
    path = _write_omx(base / "skims_2024.omx", _demand(2024))
    with tracker.start_run("reader", "asim", year=2024):
        art = tracker.log_openmatrix_file(path, direction="input")
    assert art.key == "skims_2024"
    assert "skims_2024" in tracker.get_run_inputs("reader")
    assert art.meta["openmatrix"]["zone_count"] == len(ZONES)


def test_bad_input_is_refused_before_anything_is_logged(tracker: Tracker, base: Path) -> None:
    import h5py

    good = _write_omx(base / "ok_2024.omx", _demand(2024))
    plain_h5 = base / "plain.h5"
    with h5py.File(plain_h5, "w") as h:
        h["table"] = np.arange(3)
    text = base / "notes.omx"
    text.write_text("not hdf5\n")
    with pytest.raises(RuntimeError):
        tracker.log_openmatrix_file(good, key="x")
    with tracker.start_run("bad", "asim"):
        with pytest.raises(ValueError, match="no /data group"):
            tracker.log_openmatrix_file(plain_h5, key="plain")
        with pytest.raises(ValueError, match="not an HDF5 file"):
            tracker.log_openmatrix_file(text, key="text")
        with pytest.raises(FileNotFoundError):
            tracker.log_openmatrix_file(base / "absent.omx", key="absent")
        with pytest.raises(ValueError, match="driver"):
            tracker.log_openmatrix_file(good, key="x", driver="h5")
        with pytest.raises(ValueError, match="openmatrix"):
            tracker.log_openmatrix_file(good, key="x", openmatrix={"fake": 1})
        with pytest.raises(ValueError, match="direction"):
            tracker.log_openmatrix_file(good, key="x", direction="sideways")
        with pytest.raises(TypeError, match="path"):
            tracker.log_openmatrix_file(123, key="x")
    assert tracker.get_run_outputs("bad") == {}
    assert tracker.get_run_inputs("bad") == {}


# --------------------------------------------------------------------------- #
# openmatrix_metadata
# --------------------------------------------------------------------------- #
def test_metadata_view_across_runs(tracker: Tracker, two_years) -> None:
    view = tracker.openmatrix_metadata("demand")
    matrices = view.get_matrices(year=2024)
    assert sorted(matrices["matrix"]) == sorted(two_years[2024][1])
    assert set(matrices["run_id"]) == {"y2024"}
    assert set(matrices["year"]) == {2024}
    sov = matrices.set_index("matrix").loc["SOV"]
    assert (sov["rows"], sov["cols"], sov["dtype"]) == (5, 5, "float64")
    assert sov["title"] == "drive alone"
    assert sov["attributes"] == {"units": "trips", "period": 3}
    assert len(view.get_matrices()) == sum(len(d) for _, d in two_years.values())
    assert view.get_matrices(year=1999).empty

    zones = view.get_zone_counts()
    assert list(zones["year"]) == [2024, 2030]  # ordered by year
    assert list(zones["zone_count"]) == [len(ZONES)] * 2
    assert list(zones["run_id"]) == ["y2024", "y2030"]

    mappings = view.get_mappings(run_id="y2030")
    assert dict(zip(mappings["mapping"], mappings["length"], strict=True)) == {
        "DISTRICT": len(ZONES),
        "TAZ": len(ZONES),
    }

    attrs = view.get_attributes(year=2030)
    file_attrs = attrs[attrs["matrix"].isna()]
    assert dict(zip(file_attrs["name"], file_attrs["value"], strict=True)) == {
        "model_year": 2030,
        "scenario": "build",
    }
    sov_attrs = attrs[attrs["matrix"] == "SOV"]
    assert dict(zip(sov_attrs["name"], sov_attrs["value"], strict=True)) == {
        "period": 3,
        "units": "trips",
    }

    summary = view.summary("demand")
    assert list(summary["run_id"]) == ["y2024", "y2030"]
    assert list(summary["model"]) == ["asim", "asim"]
    assert list(summary["matrix_count"]) == [2, 2]
    assert list(summary["matrices"]) == [["HOV", "SOV"], ["HOV", "SOV"]]
    assert list(summary["shape"]) == [(5, 5), (5, 5)]
    hashes = [tracker.get_run_outputs(r)["demand"].hash for r in ("y2024", "y2030")]
    assert list(summary["hash"]) == hashes
    assert [a.run_id for a in view.get_artifacts()] == ["y2024", "y2030"]


def test_view_reads_runs_logged_after_it_was_made(tracker: Tracker, base: Path) -> None:
    view = tracker.openmatrix_metadata("late")
    assert view.summary().empty
    assert list(view.get_zone_counts().columns) == [
        "run_id",
        "year",
        "iteration",
        "artifact_id",
        "zone_count",
        "rows",
        "cols",
    ]
    path = _write_omx(base / "late_2040.omx", _demand(2024), zones=ZONES)
    with tracker.start_run("late_run", "asim", year=2040, iteration=3):
        tracker.log_openmatrix_file(path, key="late")
    zones = view.get_zone_counts()
    assert list(zones["year"]) == [2040]
    assert list(zones["iteration"]) == [3]


def test_view_argument_errors(tracker: Tracker, two_years) -> None:
    view = tracker.openmatrix_metadata("demand")
    with pytest.raises(ValueError, match="openmatrix_metadata\\('other'\\)"):
        view.summary("other")
    with pytest.raises(TypeError, match="year"):
        view.get_matrices(year="2024")
    with pytest.raises(TypeError, match="concept_key"):
        tracker.openmatrix_metadata(42)


# --------------------------------------------------------------------------- #
# compare_matrices
# --------------------------------------------------------------------------- #
def test_compare_a_matrix_across_two_runs(tracker: Tracker, two_years) -> None:
    a = two_years[2024][1]["SOV"]
    b = two_years[2030][1]["SOV"]
    result = tracker.compare_matrices("demand", "SOV", "y2024", "y2030")
    assert result.sum_a == pytest.approx(a.sum())
    assert result.sum_b == pytest.approx(b.sum())
    assert result.diff_sum == pytest.approx((b - a).sum())
    assert result.abs_diff_sum == pytest.approx(np.abs(b - a).sum())
    assert result.max_abs_diff == pytest.approx(np.abs(b - a).max())
    assert result.cells == a.size
    assert result.changed_cells == int((b != a).sum()) == 7
    assert result.changed_share == pytest.approx(7 / a.size)

    tolerant = tracker.openmatrix_metadata("demand").compare("SOV", "y2024", "y2030", tolerance=0.5)
    assert tolerant.changed_cells == int((np.abs(b - a) > 0.5).sum()) == 4
    assert tolerant.diff_sum == pytest.approx(result.diff_sum)
    assert tolerant.to_dict()["tolerance"] == 0.5

    hov = tracker.compare_matrices("demand", "HOV", "y2024", "y2030")
    ha, hb = two_years[2024][1]["HOV"], two_years[2030][1]["HOV"]
    assert hov.sum_b == pytest.approx(float(hb.sum()))
    assert hov.changed_cells == int((ha != hb).sum())

    same = tracker.compare_matrices("demand", "SOV", "y2030", "y2030")
    assert (same.changed_cells, same.diff_sum) == (0, 0.0)


def test_compare_counts_nan_in_one_run_as_changed(tracker: Tracker, base: Path) -> None:
    a = np.arange(9, dtype="float64").reshape(3, 3)
    b = a.copy()
    b[0, 0] = np.nan  # NaN in b only: changed
    a[2, 2] = b[2, 2] = np.nan  # NaN in both: unchanged
    b[1, 1] += 2.0
    for run, values in (("na", a), ("nb", b)):
        path = _write_omx(base / f"{run}_2024.omx", {"X": values}, zones=np.arange(3))
        with tracker.start_run(run, "asim", year=2024):
            tracker.log_openmatrix_file(path, key="nan")
    result = tracker.compare_matrices("nan", "X", "na", "nb")
    assert result.changed_cells == 2
    assert result.sum_a == pytest.approx(np.nansum(a))
    assert result.sum_b == pytest.approx(np.nansum(b))
    assert result.diff_sum == pytest.approx(2.0)


def test_compare_errors(tracker: Tracker, two_years, base: Path) -> None:
    with pytest.raises(KeyError, match="no matrix 'BIKE'"):
        tracker.compare_matrices("demand", "BIKE", "y2024", "y2030")
    with tracker.start_run("empty", "asim"):
        pass
    with pytest.raises(KeyError, match="logged no artifact"):
        tracker.compare_matrices("demand", "SOV", "y2024", "empty")
    with pytest.raises(ValueError, match="tolerance"):
        tracker.compare_matrices("demand", "SOV", "y2024", "y2030", tolerance=-1)
    with pytest.raises(TypeError, match="run_b"):
        tracker.compare_matrices("demand", "SOV", "y2024", None)
    small = {"SOV": np.ones((3, 3)), "HOV": np.ones((3, 3), dtype="float32")}
    path = _write_omx(base / "small_2050.omx", small, zones=np.arange(3))
    with tracker.start_run("y2050", "asim", year=2050):
        tracker.log_openmatrix_file(path, key="demand")
    with pytest.raises(ValueError, match="shape"):
        tracker.compare_matrices("demand", "SOV", "y2024", "y2050")
    two_years[2030][0].unlink()
    with pytest.raises(FileNotFoundError):
        tracker.compare_matrices("demand", "SOV", "y2024", "y2030")


# --------------------------------------------------------------------------- #
# load
# --------------------------------------------------------------------------- #
def test_load_returns_a_dataset_of_the_matrices(tracker: Tracker, two_years) -> None:
    art = tracker.get_run_outputs("y2030")["demand"]
    data = two_years[2030][1]
    ds = tracker.load(art)
    assert isinstance(ds, xr.Dataset)
    assert sorted(ds.data_vars) == sorted(data)
    for name, values in data.items():
        assert ds[name].dims == ("origin", "destination")
        np.testing.assert_array_equal(ds[name].values, values)
        assert ds[name].dtype == values.dtype
    # Two mappings fit the zone count, so none is chosen without mapping=.
    assert "origin" not in ds.coords
    assert ds.attrs["scenario"] == "build"
    assert ds["SOV"].attrs == {"period": 3, "units": "trips", "title": "drive alone"}

    by_taz = tracker.load(art, columns=["SOV"], mapping="TAZ")
    assert list(by_taz.data_vars) == ["SOV"]
    np.testing.assert_array_equal(by_taz["origin"].values, ZONES)
    assert float(by_taz["SOV"].sel(origin=102, destination=104)) == data["SOV"][1, 3]

    frame = tracker.load_df(art, columns=["SOV"], mapping="TAZ")
    assert list(frame.columns) == ["origin", "destination", "SOV"]
    assert len(frame) == data["SOV"].size
    row = frame[(frame["origin"] == 105) & (frame["destination"] == 105)]
    assert float(row["SOV"].iloc[0]) == data["SOV"][4, 4]

    with pytest.raises(KeyError, match="BIKE"):
        tracker.load(art, columns=["BIKE"])
    with pytest.raises(KeyError, match="mapping 'ZIP'"):
        tracker.load(art, mapping="ZIP")
    with pytest.raises(ValueError, match="reader option"):
        tracker.load(art, chunks=10)


def test_load_uses_the_only_mapping_that_fits(tracker: Tracker, base: Path) -> None:
    path = base / "one_2024.omx"
    f = openmatrix.open_file(str(path), "w")
    f["T"] = np.arange(4.0).reshape(2, 2)
    f.create_mapping("ZONE", np.array([7, 9]))
    f.close()
    with tracker.start_run("one", "asim", year=2024):
        art = tracker.log_openmatrix_file(path, key="one")
    ds = tracker.load(art)
    assert list(ds["origin"].values) == [7, 9]
    assert ds.attrs["zone_mapping"] == "ZONE"
    assert float(ds["T"].sel(origin=9, destination=7)) == 2.0


# --------------------------------------------------------------------------- #
# Libraries
# --------------------------------------------------------------------------- #
def test_openmatrix_alone_gives_the_same_structure(
    tracker: Tracker, two_years, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = two_years[2024]
    with_h5py = tracker.get_run_outputs("y2024")["demand"].meta["openmatrix"]
    monkeypatch.setitem(sys.modules, "h5py", None)
    with tracker.start_run("no_h5py", "asim", year=2024):
        art = tracker.log_openmatrix_file(path, key="demand")
    assert art.meta["openmatrix"] == with_h5py
    ds = tracker.load(art, columns=["SOV"], mapping="TAZ")
    np.testing.assert_array_equal(ds["SOV"].values, data["SOV"])
    result = tracker.compare_matrices("demand", "SOV", "no_h5py", "y2030")
    assert result.changed_cells == 7


def test_missing_libraries_raise_import_error_naming_the_extra(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_omx(base / "demand_2024.omx", _demand(2024))
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "openmatrix", None)
    with (
        tracker.start_run("nolib", "asim", year=2024),
        pytest.raises(ImportError, match=r"consist\[omx\]"),
    ):
        tracker.log_openmatrix_file(path, key="demand")
    assert tracker.get_run_outputs("nolib") == {}


def test_load_without_its_libraries_names_them(
    tracker: Tracker, two_years, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = tracker.get_run_outputs("y2024")["demand"]
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match="xarray"):
        tracker.load(art)
    monkeypatch.setitem(sys.modules, "xarray", xr)
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "openmatrix", None)
    with pytest.raises(ImportError, match=r"consist\[omx\]"):
        tracker.load(art)
    with pytest.raises(ImportError, match=r"consist\[omx\]"):
        tracker.compare_matrices("demand", "SOV", "y2024", "y2030")


def test_load_refuses_matrices_of_different_shapes(tracker: Tracker, base: Path) -> None:
    import h5py

    path = base / "ragged.omx"
    with h5py.File(path, "w") as h:  # written with h5py: OMX allows it, PyTables not needed
        h.attrs["OMX_VERSION"] = b"0.2"
        h["data/A"] = np.ones((2, 2))
        h["data/B"] = np.ones((3, 3))
        h["lookup/Z"] = np.array([1, 2])
    with tracker.start_run("ragged", "asim", year=2024):
        art = tracker.log_openmatrix_file(path, key="ragged")
    assert art.meta["openmatrix"]["matrices"]["B"]["rows"] == 3
    assert art.meta["openmatrix"]["shape"] == [2, 2]  # no SHAPE attribute: the first matrix
    with pytest.raises(ValueError, match="different shapes"):
        tracker.load(art)
    ds = tracker.load(art, columns=["B"])
    assert ds["B"].shape == (3, 3)
    assert "origin" not in ds.coords  # the only mapping does not fit 3 zones
    with pytest.raises(ValueError, match="mapping='Z' has 2 entries"):
        tracker.load(art, columns=["B"], mapping="Z")


def test_view_describes_omx_artifacts_logged_without_the_helper(
    tracker: Tracker, base: Path
) -> None:
    data = _demand(2024)
    path = _write_omx(base / "plain_2024.omx", data)
    with tracker.start_run("plain", "asim", year=2024):
        art = tracker.log_artifact(path, key="plain")
    assert art.driver == "openmatrix" and "openmatrix" not in art.meta
    view = tracker.openmatrix_metadata("plain")
    assert sorted(view.get_matrices()["matrix"]) == sorted(data)  # read from the file
    path.unlink()
    summary = view.summary()
    assert list(summary["run_id"]) == ["plain"]
    assert summary["matrix_count"].isna().all()  # listed, but nothing to describe
    assert view.get_matrices().empty

"""Spec parameters are honoured or refused, never accepted and then ignored.

Covers the query, lineage and loading helpers: ``find_latest_run(limit=)``,
``find_run(limit=)``, ``load`` / ``load_df`` / ``load_run_output`` loader
options, and ``resolve_historical_path(artifact, run)``. Every test uses the
layout modelers use: a git repository holding the code, with the run
directory, the DuckDB file and untracked data files inside it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import consist
from _support import make_git_repo, write
from consist import Tracker
from consist.options import CacheOptions


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "model", {"model.py": "SCALE = 2\n", "README.md": "model\n"})
    write(root / "notes.log", "untracked log beside the code\n")
    return root


@pytest.fixture
def tracker(repo: Path) -> Tracker:
    t = Tracker(run_dir=repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    yield t
    t.close()


def _runs_with_iterations(tracker: Tracker, model: str, iterations: list[int]) -> list[str]:
    """One run per iteration, recorded in this order (so the last is the newest)."""
    ids = []
    for n, iteration in enumerate(iterations):
        run_id = f"{model}_{n}"
        flavour = "sweet" if n % 2 == 0 else "sour"
        with tracker.start_run(run_id, model, iteration=iteration, flavour=flavour):
            pass
        ids.append(run_id)
    return ids


# --------------------------------------------------------------------------- #
# find_latest_run(limit=) and find_run(limit=)
# --------------------------------------------------------------------------- #
def test_find_latest_run_limit_bounds_the_runs_considered(tracker: Tracker) -> None:
    # Iterations fall while runs get newer: the highest iteration is the oldest run.
    ids = _runs_with_iterations(tracker, "sim", [10, 9, 8, 7])
    assert tracker.find_latest_run(model="sim").id == ids[0]  # default: all considered
    assert tracker.find_latest_run(model="sim", limit=4).id == ids[0]
    assert tracker.find_latest_run(model="sim", limit=1).id == ids[3]  # only the newest
    assert tracker.find_latest_run(model="sim", limit=2).id == ids[2]
    assert tracker.find_latest_run(model="sim", limit=0) is None
    assert tracker.get_latest_run_id(model="sim", limit=3) == ids[1]


def test_find_latest_run_limit_with_metadata_filter(tracker: Tracker) -> None:
    ids = _runs_with_iterations(tracker, "sim", [10, 9, 8, 7, 6])
    sweet = [ids[0], ids[2], ids[4]]  # even positions carry flavour="sweet"
    assert tracker.find_latest_run(model="sim", metadata={"flavour": "sweet"}).id == sweet[0]
    latest_two = tracker.find_latest_run(model="sim", metadata={"flavour": "sweet"}, limit=2)
    assert latest_two.id == sweet[1]  # the two newest sweet runs: ids[4], ids[2]
    one = tracker.find_latest_run(model="sim", metadata={"flavour": "sweet"}, limit=1)
    assert one.id == sweet[2]


def test_find_latest_run_limit_with_tags_and_columns(tracker: Tracker) -> None:
    # Tag and column filters are bound before the window: their placeholders come first.
    for n, (iteration, tag) in enumerate([(5, "a"), (4, "a"), (3, "a"), (2, "b")]):
        with tracker.start_run(f"t{n}", "tagged", iteration=iteration, tags=[tag], year=2030):
            pass
    assert tracker.find_latest_run(model="tagged", tags=["a"], limit=1).id == "t2"
    assert tracker.find_latest_run(tags=["a"], year=2030, limit=2).id == "t1"
    assert tracker.find_latest_run(tags=["a"]).id == "t0"
    assert tracker.find_latest_run(tags=["b"], limit=1).id == "t3"


def test_find_latest_run_rejects_invalid_limit_before_querying(tracker: Tracker) -> None:
    _runs_with_iterations(tracker, "sim", [1])
    for bad in (-1, True, 2.5, "3"):
        with pytest.raises(ValueError, match="limit"):
            tracker.find_latest_run(model="sim", limit=bad)


def test_find_run_refuses_limit_instead_of_dropping_it(tracker: Tracker) -> None:
    _runs_with_iterations(tracker, "solo", [1])
    assert tracker.find_run(model="solo").id == "solo_0"
    with pytest.raises(ValueError, match="find_run does not take limit"):
        tracker.find_run(model="solo", limit=5)
    with pytest.raises(ValueError, match="index_by"):
        tracker.find_run(model="solo", index_by="year")


# --------------------------------------------------------------------------- #
# load / load_df / load_run_output loader options
# --------------------------------------------------------------------------- #
def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"zone": [1, 2, 3], "trips": [10.5, 20.0, 7.25], "mode": ["car", "bus", "walk"]}
    )


def _tables(tracker: Tracker, repo: Path) -> dict:
    """A run with a parquet output and a csv input (untracked files in the repository)."""
    parquet = repo / "data" / "trips.parquet"
    parquet.parent.mkdir(parents=True, exist_ok=True)
    _frame().to_parquet(parquet, index=False)
    csv = write(repo / "data" / "zones.csv", "zone;name\n1;north\n2;south\n")
    with tracker.start_run("tables", "prep"):
        out = tracker.log_artifact(parquet, key="trips", direction="output")
        inp = tracker.log_artifact(csv, key="zones", direction="input")
    return {"parquet": out, "csv": inp}


def test_load_honours_columns(tracker: Tracker, repo: Path) -> None:
    arts = _tables(tracker, repo)
    rel = tracker.load(arts["parquet"], columns=["mode", "zone"])
    assert rel.columns == ["mode", "zone"]
    assert sorted(rel.fetchall()) == [("bus", 2), ("car", 1), ("walk", 3)]
    with consist.use_tracker(tracker):
        assert consist.load(arts["parquet"], columns=("trips",)).columns == ["trips"]
    via_run = tracker.load_run_output("tables", "trips", columns=["trips"])
    assert via_run.fetchall() == [(10.5,), (20.0,), (7.25,)]
    assert tracker.load(arts["parquet"]).columns == ["zone", "trips", "mode"]  # default: all


def test_load_passes_reader_options_to_duckdb(tracker: Tracker, repo: Path) -> None:
    arts = _tables(tracker, repo)
    rel = tracker.load(arts["csv"], delimiter=";", header=True)
    assert rel.columns == ["zone", "name"]
    assert rel.fetchall() == [(1, "north"), (2, "south")]
    raw = tracker.load(arts["csv"], delimiter=";", header=False)
    assert raw.fetchall()[0] == ("zone", "name")  # the header row read as data
    typed = tracker.load(arts["csv"], delimiter=";", dtype={"zone": "VARCHAR"}, columns=["zone"])
    assert typed.fetchall() == [("1",), ("2",)]


def test_load_rejects_unknown_columns_and_options(tracker: Tracker, repo: Path) -> None:
    arts = _tables(tracker, repo)
    with pytest.raises(KeyError, match="nope"):
        tracker.load(arts["parquet"], columns=["zone", "nope"])
    with pytest.raises(TypeError, match="columns must be a list"):
        tracker.load(arts["parquet"], columns="zone")
    with pytest.raises(TypeError, match="columns must be a list"):
        tracker.load(arts["csv"], columns={"zone": "INTEGER"})
    with pytest.raises(TypeError, match="bogus"):
        tracker.load(arts["parquet"], bogus=1)
    with pytest.raises(ValueError, match="bogus"):
        tracker.load(arts["csv"], bogus=1)


def test_load_df_honours_columns_for_every_driver(tracker: Tracker, repo: Path) -> None:
    arts = _tables(tracker, repo)
    df = tracker.load_df(arts["parquet"], columns=["mode", "zone"])
    assert list(df.columns) == ["mode", "zone"] and df["mode"].tolist() == ["car", "bus", "walk"]
    zones = tracker.load_df(arts["csv"], sep=";", columns=["name"])
    assert list(zones.columns) == ["name"] and zones["name"].tolist() == ["north", "south"]
    with pytest.raises(KeyError, match="nope"):
        tracker.load_df(arts["csv"], sep=";", columns=["nope"])
    with pytest.raises(KeyError, match="nope"):
        tracker.load_df(arts["parquet"], columns=["nope"])


def test_reader_options_are_refused_when_rows_come_from_the_store(
    tracker: Tracker, repo: Path
) -> None:
    csv = write(repo / "data" / "flows.csv", "origin,dest,flow\n1,2,5\n2,1,7\n")
    with tracker.start_run("ingest", "prep"):
        art = tracker.log_artifact(csv, key="flows", direction="output")
        tracker.ingest(art)
    missing = write(repo / "data" / "never.csv", "a\n1\n")
    with tracker.start_run("plain", "prep_plain"):
        never = tracker.log_artifact(missing, key="never", direction="output")
    csv.unlink()
    missing.unlink()
    # The ingested rows still load, with columns= honoured...
    assert tracker.load_df(art, columns=["flow"])["flow"].tolist() == [5, 7]
    assert tracker.load(art, columns=["dest"]).fetchall() == [(2,), (1,)]
    # ...but a file-reader option cannot apply to them: refused, naming it.
    with pytest.raises(ValueError, match="sep"):
        tracker.load_df(art, sep=";")
    with pytest.raises(ValueError, match="header"):
        tracker.load(art, header=False)
    # A missing file that was never ingested is still a FileNotFoundError.
    with pytest.raises(FileNotFoundError):
        tracker.load(never, header=False)


# --------------------------------------------------------------------------- #
# resolve_historical_path(artifact, run)
# --------------------------------------------------------------------------- #
def scaled_output(factor: int) -> pd.DataFrame:
    return pd.DataFrame({"value": [factor, 2 * factor]})


def test_resolve_historical_path_requires_the_runs_artifact(tracker: Tracker, repo: Path) -> None:
    arts = _tables(tracker, repo)
    with tracker.start_run("other", "unrelated"):
        pass
    other = tracker.get_run("other")
    producer = tracker.get_run("tables")
    assert (
        tracker.resolve_historical_path(arts["parquet"], producer)
        == repo / "data" / "trips.parquet"
    )
    assert tracker.resolve_historical_path(arts["csv"], producer) == repo / "data" / "zones.csv"
    with pytest.raises(ValueError, match="not an input or output of run 'other'"):
        tracker.resolve_historical_path(arts["parquet"], other)


def test_resolve_historical_path_of_a_hydrated_cache_hit(tracker: Tracker) -> None:
    options = CacheOptions(cache_hydration="outputs-all")
    first = tracker.run(
        scaled_output, config={"factor": 3}, outputs=["scaled"], cache_options=options
    )
    second = tracker.run(
        scaled_output, config={"factor": 3}, outputs=["scaled"], cache_options=options
    )
    assert not first.cache_hit and second.cache_hit
    art = first.outputs["scaled"]
    original = tracker.resolve_historical_path(art, tracker.get_run(first.run_id))
    copy = tracker.resolve_historical_path(art, tracker.get_run(second.run_id))
    assert original == art.path
    assert copy == second.outputs["scaled"].path != original
    assert copy.is_relative_to(tracker.run_artifact_dir(tracker.get_run(second.run_id)))
    assert pd.read_parquet(copy).equals(pd.read_parquet(original))


def test_resolve_historical_path_without_a_database(repo: Path) -> None:
    journal_only = Tracker(run_dir=repo / "runs_journal", project_root=repo)
    data = write(repo / "data" / "raw.csv", "a\n1\n")
    with journal_only.start_run("consumer", "m"):
        art = journal_only.log_input(data, key="raw")
    with journal_only.start_run("bystander", "m2"):
        pass
    consumer = journal_only.get_run_record("consumer").run
    bystander = journal_only.get_run_record("bystander").run
    assert journal_only.resolve_historical_path(art, consumer) == data
    with pytest.raises(ValueError, match="bystander"):
        journal_only.resolve_historical_path(art, bystander)
